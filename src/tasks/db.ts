// Opens the one SQLite file that holds the tasks (which are the queue, and
// record their owners and their instances' expiries), their events, their
// runs' logs and idempotency keys, and brings its schema up to date. The file
// and its -wal/-shm companions hold password hashes: they are created private
// and a file others can read is refused. Nothing happens on import.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export type Db = Database.Database;

export class DatabaseFileError extends Error {
  override name = 'DatabaseFileError';
}

/**
 * Each pragma is set for a reason:
 * - journal_mode=WAL: readers (GET /status) never wait for the writer, and a
 *   commit is one append to the WAL instead of a rewrite of pages.
 * - synchronous=FULL (EC2_API_DB_SYNC, default): every commit is fsynced, so
 *   a 202 survives power loss too. With group commit (group-commit.ts) one
 *   fsync serves every request of a turn; `npm run bench` measures FULL and
 *   NORMAL (which in WAL mode survives `kill -9` but may lose the last
 *   commits to a power cut) within this machine's noise of each other.
 * - busy_timeout: a second connection (an operator's sqlite3 shell) may hold
 *   a lock briefly; wait for it rather than fail the request.
 * - foreign_keys: enforce the references between tables.
 * - cache_size=-2000 (2 MiB, not better-sqlite3's 16 MiB): the hot rows are
 *   few and small, and the service keeps to 100 MB with thousands queued.
 * - secure_delete: what is deleted or overwritten (a password hash once its
 *   task has ended, a purged task) is zeroed in the file, not left in a free
 *   page or cell for anyone who later reads the file.
 * - journal_size_limit: after a checkpoint the -wal file (copies of recently
 *   written pages) is cut back to 8 MiB instead of keeping its largest size.
 * auto_vacuum=INCREMENTAL is set in `openDatabase` (it needs a VACUUM on a
 * file that has tables): purges give their pages back to the file system.
 */
const PRAGMAS = (sync: 'NORMAL' | 'FULL') => [
  'journal_mode = WAL',
  `synchronous = ${sync}`,
  'busy_timeout = 2000',
  'foreign_keys = ON',
  'cache_size = -2000',
  'secure_delete = ON',
  'journal_size_limit = 8388608',
];

/** Migrations in order; user_version records how many have run. */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE tasks (
    id              TEXT PRIMARY KEY,
    action          TEXT NOT NULL CHECK (action IN ('create', 'delete')),
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    params          TEXT NOT NULL,              -- JSON; a create keeps only the password hash
    ip              TEXT,
    instance_id     TEXT,
    instance_state  TEXT,
    error           TEXT,
    progress        TEXT,                       -- JSON { step, of, name }
    log             TEXT NOT NULL DEFAULT '',
    attempts        INTEGER NOT NULL DEFAULT 0,
    runner_pid      INTEGER,                    -- the ansible-playbook process running it
    runner_start    TEXT,                       -- that process's kernel start time
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT
  );
  CREATE INDEX tasks_status ON tasks (status);
  CREATE INDEX tasks_created ON tasks (created_at);

  CREATE TABLE idempotency_keys (
    key           TEXT PRIMARY KEY,
    request_hash  TEXT NOT NULL,
    task_id       TEXT NOT NULL REFERENCES tasks (id),
    expires_at    TEXT NOT NULL
  );
  CREATE INDEX idempotency_expiry ON idempotency_keys (expires_at);

  -- better-queue's own rows, in the releases before the tasks table became the queue (dropped by migration 3).
  CREATE TABLE queue_items (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id   TEXT NOT NULL,
    payload   TEXT NOT NULL,
    priority  INTEGER NOT NULL DEFAULT 0,
    lock_id   TEXT
  );
  CREATE INDEX queue_items_lock ON queue_items (lock_id);
  CREATE UNIQUE INDEX queue_items_waiting ON queue_items (task_id) WHERE lock_id IS NULL;

  -- Which service process owns this file, so that a second one refuses to start.
  CREATE TABLE service_owner (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    pid         INTEGER NOT NULL,
    start_time  TEXT NOT NULL
  );
  `,
  `
  -- What happened during a task, in order: status changes and playbook steps.
  -- The id orders events across tasks and is the SSE event id.
  CREATE TABLE task_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id  TEXT NOT NULL REFERENCES tasks (id),
    at       TEXT NOT NULL,
    type     TEXT NOT NULL,               -- 'status' | 'step_start' | 'step_end'
    data     TEXT NOT NULL                -- JSON
  );
  CREATE INDEX task_events_task ON task_events (task_id, id);
  CREATE INDEX tasks_ip ON tasks (ip);
  -- A cancel asked for while the task ran: survives a crash, so a restarted
  -- service cleans up instead of running the create again.
  ALTER TABLE tasks ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
  `,
  `
  -- The tasks table is the queue: queued rows wait, a claim marks a batch of
  -- them running under one batch id (better-queue's lock id). better-queue's
  -- own table goes; the tasks table was always the truth.
  DROP TABLE queue_items;
  ALTER TABLE tasks ADD COLUMN batch_id TEXT;
  -- A log keeps its beginning (log) and its end (log_tail); log_size is how
  -- much the playbook wrote in all, so a reader knows what was left out.
  ALTER TABLE tasks ADD COLUMN log_tail TEXT NOT NULL DEFAULT '';
  ALTER TABLE tasks ADD COLUMN log_size INTEGER NOT NULL DEFAULT 0;
  UPDATE tasks SET log_size = length(log);
  `,
  `
  -- A playbook run's log, stored once for all the tasks it ran (a batch of up
  -- to 100 used to hold a copy each). head: the first 64 KiB; tail: the last
  -- 1 MiB; size: how much the playbook wrote in all.
  CREATE TABLE runs (
    id    TEXT PRIMARY KEY,
    head  TEXT NOT NULL,
    tail  TEXT NOT NULL,
    size  INTEGER NOT NULL
  );
  ALTER TABLE tasks ADD COLUMN run_id TEXT REFERENCES runs (id);
  CREATE INDEX tasks_run ON tasks (run_id);
  -- The tasks' copies of one run's log become one row (tasks of one batch
  -- with the same log shared a run); then the copies go.
  CREATE TEMP TABLE run_of (task_id TEXT PRIMARY KEY, run_id TEXT NOT NULL);
  INSERT INTO run_of
    SELECT id, min(id) OVER (PARTITION BY coalesce(batch_id, id), log, log_tail, log_size) FROM tasks
    WHERE log_size > 0 OR log <> '' OR log_tail <> '';
  INSERT INTO runs (id, head, tail, size)
    SELECT id, log, log_tail, log_size FROM tasks WHERE id IN (SELECT run_id FROM run_of);
  UPDATE tasks SET run_id = (SELECT run_id FROM run_of WHERE task_id = tasks.id);
  DROP TABLE run_of;
  ALTER TABLE tasks DROP COLUMN log;
  ALTER TABLE tasks DROP COLUMN log_tail;
  ALTER TABLE tasks DROP COLUMN log_size;
  -- Retention finds ended tasks by when they ended; a key's task is looked
  -- up when tasks are purged (and by the foreign key's check).
  CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
  CREATE INDEX idempotency_task ON idempotency_keys (task_id);
  -- An ended create keeps no password hash unless a live idempotency key still needs it.
  UPDATE tasks SET params = json_remove(params, '$.password_hash')
  WHERE action = 'create' AND status IN ('succeeded', 'failed', 'canceled') AND json_valid(params)
    AND NOT EXISTS (SELECT 1 FROM idempotency_keys k
                    WHERE k.task_id = tasks.id AND k.expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
  -- One service per file is now an OS lock beside it (service-lock.ts).
  DROP TABLE service_owner;
  `,
  `
  -- Ownership and lifetimes (docs/task-lifecycle.md, "Expiry" and "Ownership").
  -- The name of the token that asked for the task; tasks from before are the default token's.
  ALTER TABLE tasks ADD COLUMN created_by TEXT NOT NULL DEFAULT 'default';
  -- Why the service queued a task itself: 'expired' for the delete an expiry queued; null when a client asked.
  ALTER TABLE tasks ADD COLUMN reason TEXT;
  -- A create's expiry: when its instance is terminated (null: never), and the delete task that expiry
  -- queued (set once, in the transaction that inserts that task: the expiry never fires twice).
  ALTER TABLE tasks ADD COLUMN expires_at TEXT;
  ALTER TABLE tasks ADD COLUMN expiry_task_id TEXT;
  CREATE INDEX tasks_pending_expiry ON tasks (expires_at) WHERE expires_at IS NOT NULL AND expiry_task_id IS NULL;
  CREATE INDEX tasks_owner ON tasks (created_by, id);
  -- Idempotency keys are kept per owner: two tokens using one key never see each other's task.
  CREATE TABLE idempotency_keys_by_owner (
    owner         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    task_id       TEXT NOT NULL REFERENCES tasks (id),
    expires_at    TEXT NOT NULL,
    PRIMARY KEY (owner, key)
  );
  INSERT INTO idempotency_keys_by_owner (owner, key, request_hash, task_id, expires_at)
    SELECT 'default', key, request_hash, task_id, expires_at FROM idempotency_keys;
  DROP TABLE idempotency_keys;
  ALTER TABLE idempotency_keys_by_owner RENAME TO idempotency_keys;
  CREATE INDEX idempotency_expiry ON idempotency_keys (expires_at);
  CREATE INDEX idempotency_task ON idempotency_keys (task_id);
  `,
  `
  -- Leases (docs/multi-node.md): the node that runs a task, and until when it holds it. Only nodes sharing
  -- PostgreSQL fill them in; the columns are here too so that both stores have one schema.
  ALTER TABLE tasks ADD COLUMN leased_by TEXT;
  ALTER TABLE tasks ADD COLUMN lease_until TEXT;
  CREATE INDEX tasks_lease ON tasks (lease_until) WHERE status = 'running';
  `,
  `
  -- The EC2 pacer's buckets when nodes share PostgreSQL (docs/pacing.md): one row per account, Region and kind
  -- of call; \`at\` and \`last_decrease\` in the database's seconds. Unused on SQLite (one process paces in memory).
  CREATE TABLE rate_buckets (
    id             TEXT PRIMARY KEY,
    tokens         REAL NOT NULL,
    rate           REAL NOT NULL,
    at             REAL NOT NULL,
    last_decrease  REAL NOT NULL
  );
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** The database file and the two SQLite makes beside it in WAL mode. */
const databaseFiles = (file: string) => [file, `${file}-wal`, `${file}-shm`];

/** What the service keeps beside its database file, besides SQLite's own: all of it private to the service. */
export function besideDatabase(file: string) {
  return {
    /** Held locked by the service for as long as it lives (service-lock.ts). */
    lock: `${file}.lock`,
    /** Who holds the lock: pid, host name and start time, as one JSON line. */
    holder: `${file}.holder`,
    /** The run folders of the playbooks running now (their vars files hold password hashes). */
    runs: `${file}.runs`,
  };
}

export function openDatabase(file: string, sync: 'NORMAL' | 'FULL' = 'FULL'): Db {
  if (file === ':memory:') return prepare(new Database(file), sync);
  refuseReadableByOthers(file);
  // umask around the open: SQLite creates -wal and -shm with the process
  // umask, and they hold what the database holds.
  const umask = process.umask(0o077);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    return prepare(new Database(file), sync);
  } finally {
    process.umask(umask);
  }
}

function prepare(db: Db, sync: 'NORMAL' | 'FULL'): Db {
  // On a new file this takes effect with the first table; on an older one only after a VACUUM (below).
  db.pragma('auto_vacuum = INCREMENTAL');
  for (const pragma of PRAGMAS(sync)) db.pragma(pragma);
  migrate(db);
  if (db.pragma('auto_vacuum', { simple: true }) !== INCREMENTAL) convertToIncrementalVacuum(db);
  return db;
}

const INCREMENTAL = 2;

/**
 * Once, for a file made before auto_vacuum was set: VACUUM rewrites it (and,
 * with secure_delete, leaves none of its old free pages). It is atomic, so a
 * crash or a full disk leaves the file as it was, and the next start tries
 * again. It needs free space about the size of the file.
 */
function convertToIncrementalVacuum(db: Db): void {
  try {
    db.exec('VACUUM');
  } catch (error) {
    db.close();
    const why = error instanceof Error ? error.message : String(error);
    throw new DatabaseFileError(
      `could not rewrite ${db.name} for incremental vacuum (done once after an upgrade; it needs free disk space about the size of the file): ${why}; free some space and start again`,
    );
  }
}

/** A database that others can read leaks password hashes: say so, and how to fix it, rather than start. */
function refuseReadableByOthers(file: string): void {
  const exposed = databaseFiles(file).filter((name) => {
    try {
      return (fs.statSync(name).mode & 0o077) !== 0;
    } catch {
      return false; // not there yet: it will be created private
    }
  });
  if (exposed.length) {
    throw new DatabaseFileError(
      `${exposed.join(', ')} can be read by other users and holds password hashes; ` +
        `run \`chmod 600 ${exposed.join(' ')}\` and start again`,
    );
  }
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    db.close();
    throw new Error(
      `the database has schema version ${current}, newer than this ec2-api (${SCHEMA_VERSION}); run a newer release`,
    );
  }
  for (let version = current; version < SCHEMA_VERSION; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
