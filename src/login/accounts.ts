// Which login names a task may create on an instance. The system accounts
// are one list shared with the playbooks, which refuse them too when run by
// hand: inventory/group_vars/all/system_accounts.json.
import fs from 'node:fs';
import path from 'node:path';

export const USERNAME_PATTERN = '^[a-z_][a-z0-9_-]{0,31}$';

/** Where the playbooks' inventory keeps the list, relative to the project root. */
export const SYSTEM_ACCOUNTS_FILE = path.join('inventory', 'group_vars', 'all', 'system_accounts.json');

/**
 * Accounts that exist on the images we launch, or that tools treat as
 * privileged: a login made with one of these names would take it over.
 */
export function loadSystemAccounts(projectDir: string): ReadonlySet<string> {
  const file = path.join(projectDir, SYSTEM_ACCOUNTS_FILE);
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { ec2_api_system_accounts?: unknown };
  const names = parsed.ec2_api_system_accounts;
  if (!Array.isArray(names) || names.length === 0 || !names.every((name) => typeof name === 'string')) {
    throw new Error(`${file} must hold {"ec2_api_system_accounts": ["root", …]}`);
  }
  return new Set(names);
}
