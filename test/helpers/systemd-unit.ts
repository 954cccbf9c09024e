// deploy/ec2-api.service as systemd would start it, outside systemd (no
// systemd runs here): its ExecStart= command, the environment its
// Environment=, EnvironmentFile= and LoadCredential= lines make, its
// WorkingDirectory= and UMask=, with the host's paths (/opt/ec2-api,
// /etc/ec2-api, %S, %C, %d) put in temporary directories. As root, the
// service runs as `nobody`, as it runs as its own system user under systemd,
// on a read-only file system but for /tmp (as under ProtectSystem=strict).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../src/config.js';
import { eventuallyAsync, freePort, tempDir } from './harness.js';

export const UNIT_FILE = path.join(projectRoot, 'deploy', 'ec2-api.service');
export const ENV_FILE = path.join(projectRoot, 'deploy', 'ec2-api.env');
/** Where docs/service.md installs the code; the unit names it. */
const INSTALLED_AT = '/opt/ec2-api';
/** systemd's default PATH for services. */
const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The [Service] section: every value of each key, in order. */
export function serviceSection(file = UNIT_FILE): Map<string, string[]> {
  const section = new Map<string, string[]>();
  let current = '';
  for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.startsWith('[')) {
      current = line;
      continue;
    }
    if (current !== '[Service]') continue;
    const at = line.indexOf('=');
    const key = line.slice(0, at);
    section.set(key, [...(section.get(key) ?? []), line.slice(at + 1)]);
  }
  return section;
}

/** One value of the [Service] section; fails when the key is missing. */
export function serviceValue(key: string, file = UNIT_FILE): string {
  const values = serviceSection(file).get(key);
  if (!values?.length) throw new Error(`${file} has no ${key}=`);
  return values.at(-1)!;
}

/** Words as systemd splits them: on spaces, with "double quotes" kept together. */
function words(text: string): string[] {
  return [...text.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

/** KEY=VALUE lines of an EnvironmentFile (comments and blank lines skipped, quotes removed). */
export function environmentFile(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const at = line.indexOf('=');
    env[line.slice(0, at).trim()] = line.slice(at + 1).trim().replace(/^"(.*)"$/, '$1');
  }
  return env;
}

export interface UnitDirs {
  /** %S: the parent of StateDirectory= (/var/lib). */
  state: string;
  /** %C: the parent of CacheDirectory= (/var/cache). */
  cache: string;
  /** %d: $CREDENTIALS_DIRECTORY, where LoadCredential= puts each credential. */
  credentials: string;
}

export function unitDirs(): UnitDirs {
  const root = tempDir('ec2-api-unit-');
  fs.chmodSync(root, 0o755); // the service's user must reach its directories inside
  const dirs = { state: path.join(root, 'lib'), cache: path.join(root, 'cache'), credentials: path.join(root, 'credentials') };
  for (const dir of Object.values(dirs)) fs.mkdirSync(dir, { mode: 0o755 });
  return dirs;
}

/** The user the service runs as here: `nobody` when the tests run as root (as the unit's own system user would be). */
const asRoot = process.getuid?.() === 0;
const SERVICE_UID = 65534;

/** What systemd prepares before ExecStart=: the state and cache directories, and the credentials as files. */
export function prepare(dirs: UnitDirs, credentials: Record<string, string>): void {
  const section = serviceSection();
  for (const [key, parent] of [['StateDirectory', dirs.state], ['CacheDirectory', dirs.cache]] as const) {
    for (const name of section.get(key) ?? []) {
      const dir = path.join(parent, name);
      fs.mkdirSync(dir, { recursive: true });
      fs.chmodSync(dir, parseInt(section.get(`${key}Mode`)?.at(-1) ?? '0755', 8));
      if (asRoot) fs.chownSync(dir, SERVICE_UID, SERVICE_UID);
    }
  }
  for (const entry of section.get('LoadCredential') ?? []) {
    const name = entry.split(':')[0]!;
    if (!(name in credentials)) throw new Error(`the test gives no content for the credential ${name}`);
    const file = path.join(dirs.credentials, name);
    fs.writeFileSync(file, credentials[name]!, { mode: 0o400 });
    if (asRoot) fs.chownSync(file, SERVICE_UID, SERVICE_UID);
  }
  fs.chmodSync(dirs.credentials, 0o500);
  if (asRoot) fs.chownSync(dirs.credentials, SERVICE_UID, SERVICE_UID);
}

/** The unit's specifiers and host paths, in this test's directories. */
function substitute(text: string, dirs: UnitDirs): string {
  return text
    .replaceAll('%S', dirs.state)
    .replaceAll('%C', dirs.cache)
    .replaceAll('%d', dirs.credentials)
    .replaceAll('%%', '%')
    .replaceAll(INSTALLED_AT, projectRoot);
}

export interface UnitCommand {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  umask: string;
}

/**
 * ExecStart= with its environment, as systemd builds it: its default PATH,
 * the EnvironmentFile (the example in deploy/, standing in for /etc/ec2-api),
 * then Environment= lines, and CREDENTIALS_DIRECTORY; `overrides` last (the
 * test's port and its moto endpoint).
 */
export function unitCommand(dirs: UnitDirs, overrides: Record<string, string> = {}): UnitCommand {
  const section = serviceSection();
  const [binary, ...args] = words(substitute(serviceValue('ExecStart'), dirs));
  if (binary !== '/usr/bin/node') throw new Error(`ExecStart= runs ${binary}, not /usr/bin/node`);
  const env: Record<string, string> = { PATH: SYSTEMD_PATH, LANG: 'C.UTF-8' };
  if (section.get('EnvironmentFile')?.length !== 1) throw new Error('the unit should have one EnvironmentFile=');
  Object.assign(env, environmentFile(ENV_FILE));
  for (const line of section.get('Environment') ?? []) {
    for (const assignment of words(substitute(line, dirs))) {
      const at = assignment.indexOf('=');
      env[assignment.slice(0, at)] = assignment.slice(at + 1);
    }
  }
  if (section.has('LoadCredential')) env.CREDENTIALS_DIRECTORY = dirs.credentials;
  // Node as the test runs it stands in for /usr/bin/node (the same one on a Debian host).
  return { argv: [process.execPath, ...args], env: { ...env, ...overrides }, cwd: substitute(serviceValue('WorkingDirectory'), dirs), umask: serviceValue('UMask') };
}

export interface UnitProcess {
  url: string;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | string>;
}

/**
 * A command as the service's user (`runuser -u ec2-api` on a host): `nobody`
 * when the tests run as root. Without tap's NODE_OPTIONS, which it adds to
 * every child (its process-info hooks, which as another user cannot write
 * .tap/ and fail the exit): the service runs as systemd would start it.
 */
export function asServiceUser(argv: string[]): string[] {
  const user = asRoot ? ['setpriv', `--reuid=${SERVICE_UID}`, `--regid=${SERVICE_UID}`, '--clear-groups', '--'] : [];
  return [...user, 'env', '-u', 'NODE_OPTIONS', ...argv];
}

/** A file or directory of the service's user (`install -o ec2-api`). */
export function ownByServiceUser(file: string): void {
  if (asRoot) fs.chownSync(file, SERVICE_UID, SERVICE_UID);
}

/**
 * ProtectSystem=strict, as far as it can be had without systemd: in a mount
 * namespace of its own, the whole file system is read-only but /tmp (where
 * this test's state, cache and credential directories are, and which
 * PrivateTmp= gives the service). Needs root and CAP_SYS_ADMIN; elsewhere the
 * service runs on the writable file system.
 */
export const readOnlySystem = asRoot && spawnSync('unshare', ['--mount', 'true']).status === 0;

/** Starts the unit's command (as `nobody` when root) and waits until it answers /healthz. */
export async function startUnit(command: UnitCommand): Promise<UnitProcess> {
  const port = await freePort();
  // The umask is set the way systemd sets it, before the exec; setpriv drops root as User= would.
  const mounts = readOnlySystem ? 'mount --bind /tmp /tmp && mount -o remount,bind,ro / && ' : '';
  const sandbox = readOnlySystem ? ['unshare', '--mount', '--propagation', 'private'] : [];
  const [program, ...args] = [...sandbox, '/bin/sh', '-c', `${mounts}umask ${command.umask} && exec "$@"`, 'sh', ...asServiceUser(command.argv)];
  const child = spawn(program!, args, {
    cwd: command.cwd,
    env: { ...command.env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const url = `http://127.0.0.1:${port}`;
  await eventuallyAsync(async () => {
    if (child.exitCode !== null) throw new Error(`the service exited at start:\n${stdout}${stderr}`);
    return fetch(`${url}/healthz`).then((r) => r.ok, () => false);
  }, 60_000, 'the service to listen');
  return { url, child, stdout: () => stdout, stderr: () => stderr, exited };
}
