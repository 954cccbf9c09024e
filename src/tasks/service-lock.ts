// One service per database file: two would each take the other's running
// tasks for orphans and requeue them, and a pid check cannot tell across PID
// namespaces (two containers on one volume are both pid 1). So the lock is
// the kernel's: a second SQLite connection, on a small file beside the
// database, takes an exclusive lock (fcntl) with `locking_mode=EXCLUSIVE`
// and a write, and keeps it for as long as the process lives. The kernel lets
// go of it when the process dies, however it dies (kill -9 included). The
// database itself is not locked: a reader (a backup, an operator's sqlite3)
// opens it as before. Who holds the lock is written beside it, for the
// refusal to name.
//
// Nothing else in this process may open the lock file: closing any
// descriptor of a file drops the process's fcntl locks on it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { besideDatabase } from './db.js';

export class DatabaseLockedError extends Error {
  override name = 'DatabaseLockedError';
}

/** What the holder file says. */
export interface LockHolder {
  pid: number;
  hostname: string;
  started_at: string;
}

export class ServiceLock {
  private constructor(
    private readonly connection: Database.Database,
    private readonly holderFile: string,
  ) {}

  /**
   * Takes the lock of `dbFile`'s service, or throws DatabaseLockedError
   * naming whoever holds it and the setting that gives another file
   * (`setting`: EC2_API_DB; EC2_API_RUNS_DIR for a node's run folders).
   */
  static acquire(dbFile: string, setting = 'EC2_API_DB'): ServiceLock {
    const { lock, holder } = besideDatabase(dbFile);
    const umask = process.umask(0o077);
    let connection: Database.Database;
    try {
      fs.mkdirSync(path.dirname(lock), { recursive: true, mode: 0o700 });
      // timeout 0: a held lock is an answer, not something to wait for.
      connection = new Database(lock, { timeout: 0 });
    } finally {
      process.umask(umask);
    }
    try {
      connection.pragma('journal_mode = MEMORY'); // no -journal file beside it
      connection.pragma('locking_mode = EXCLUSIVE');
      connection.pragma('user_version = 1'); // the write that takes the exclusive lock, kept from now on
    } catch (error) {
      connection.close();
      if ((error as { code?: string }).code === 'SQLITE_BUSY') throw new DatabaseLockedError(refusal(dbFile, holder, setting));
      throw error;
    }
    writeHolder(holder);
    return new ServiceLock(connection, holder);
  }

  /** Lets go of the lock (a clean stop); the holder file goes first, while it is still true. */
  release(): void {
    if (!this.connection.open) return;
    fs.rmSync(this.holderFile, { force: true });
    this.connection.close();
  }
}

function writeHolder(file: string): void {
  const holder: LockHolder = {
    pid: process.pid,
    hostname: os.hostname(),
    started_at: new Date(performance.timeOrigin).toISOString(),
  };
  // Renamed into place: a reader never sees half of it.
  const partial = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(partial, `${JSON.stringify(holder)}\n`, { mode: 0o600 });
  fs.renameSync(partial, file);
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const holder = JSON.parse(fs.readFileSync(file, 'utf8')) as LockHolder;
    return typeof holder.pid === 'number' ? holder : undefined;
  } catch {
    return undefined;
  }
}

function refusal(dbFile: string, holderFile: string, setting: string): string {
  const holder = readHolder(holderFile);
  const who = holder
    ? `another ec2-api (pid ${holder.pid} on ${holder.hostname}, started ${holder.started_at}) is using ${dbFile}`
    : `another ec2-api is using ${dbFile} (it holds ${besideDatabase(dbFile).lock})`;
  return `${who}; stop it, or set ${setting} to another ${setting === 'EC2_API_DB' ? 'file' : 'folder'}`;
}
