// `ec2-api-server backup FILE`: a consistent copy of the database while the
// service runs, through SQLite's online backup API (better-sqlite3's
// db.backup()), which copies the pages as of one moment and starts over if
// the service writes meanwhile. The copy holds what the database holds
// (password hashes), so it is created private, and never overwrites a file.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export class BackupError extends Error {
  override name = 'BackupError';
}

export interface BackupResult {
  tasks: number;
  schemaVersion: number;
  bytes: number;
}

export async function backupDatabase(source: string, target: string): Promise<BackupResult> {
  if (!fs.existsSync(source)) {
    throw new BackupError(`there is no database at ${source}: set EC2_API_DB to the service's database file (as in its unit or environment)`);
  }
  if (fs.existsSync(target)) throw new BackupError(`${target} already exists: a backup never overwrites a file; name a new one`);
  const dir = path.dirname(target);
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new BackupError(`the directory ${dir} does not exist: create it (private to this user) first`);
  }

  // The source read-only: a backup neither migrates nor claims the
  // database. The umask keeps everything SQLite creates (the copy, its
  // journal, a -shm beside a stopped service's database) private.
  const umask = process.umask(0o077);
  try {
    let db: Database.Database | undefined;
    try {
      db = new Database(source, { readonly: true, fileMustExist: true });
      await db.backup(target);
    } catch (error) {
      fs.rmSync(target, { force: true });
      throw new BackupError(
        `cannot back up ${source}: ${error instanceof Error ? error.message : String(error)}; run this as the service's user, on its database file`,
      );
    } finally {
      db?.close();
    }
    fs.chmodSync(target, 0o600);
    return inspect(target);
  } finally {
    process.umask(umask);
  }
}

/** The copy, checked the way the service will read it after a restore. */
function inspect(target: string): BackupResult {
  const copy = new Database(target, { fileMustExist: true });
  try {
    const check = copy.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new BackupError(`the copy at ${target} fails SQLite's check (${String(check)}); it is not a backup: try again`);
    return {
      tasks: (copy.prepare('SELECT count(*) AS n FROM tasks').get() as { n: number }).n,
      schemaVersion: copy.pragma('user_version', { simple: true }) as number,
      bytes: fs.statSync(target).size,
    };
  } finally {
    copy.close();
  }
}
