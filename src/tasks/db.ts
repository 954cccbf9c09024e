// Opens the one SQLite file that holds tasks, idempotency keys and the queue,
// and brings its schema up to date. Nothing happens on import.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export type Db = Database.Database;

/**
 * Each pragma is set for a reason:
 * - journal_mode=WAL: readers (GET /status) never wait for the writer, and a
 *   commit is one append to the WAL instead of a rewrite of pages.
 * - synchronous=FULL (EC2_API_DB_SYNC, default): every commit is fsynced, so
 *   a 202 survives power loss too. With group commit (group-commit.ts) one
 *   fsync serves every request of a turn, and `npm run bench` measures FULL
 *   and NORMAL (which in WAL mode survives `kill -9` but may lose the last
 *   commits to a power cut) within this machine's noise of each other
 *   (README, Performance): power-loss durability costs too little to skip.
 * - busy_timeout: a second connection (an operator's sqlite3 shell) may hold
 *   a lock briefly; wait for it rather than fail the request.
 * - foreign_keys: enforce the references between tables.
 * - cache_size=-2000 (2 MiB, not better-sqlite3's 16 MiB): the hot rows are
 *   few and small, and the service keeps to 100 MB with thousands queued.
 */
const PRAGMAS = (sync: 'NORMAL' | 'FULL') => [
  'journal_mode = WAL',
  `synchronous = ${sync}`,
  'busy_timeout = 2000',
  'foreign_keys = ON',
  'cache_size = -2000',
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

  -- better-queue's own rows: which tasks wait, in what order, and which are
  -- locked into a running batch. /status never reads this table.
  CREATE TABLE queue_items (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id   TEXT NOT NULL,
    payload   TEXT NOT NULL,
    priority  INTEGER NOT NULL DEFAULT 0,
    lock_id   TEXT
  );
  CREATE INDEX queue_items_lock ON queue_items (lock_id);
  -- One waiting row per task; a task pushed again while its batch runs gets a
  -- second row, as in better-queue's memory store.
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
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function openDatabase(file: string, sync: 'NORMAL' | 'FULL' = 'FULL'): Db {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file);
  for (const pragma of PRAGMAS(sync)) db.pragma(pragma);
  migrate(db);
  return db;
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
