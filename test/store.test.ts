// The database and the task store: the tasks table is the queue. Every
// transition of docs/task-lifecycle.md that the store makes, run against
// both stores: a real SQLite file, and a real PostgreSQL (a private cluster
// started for this file, test/helpers/postgres.ts). Then what only nodes
// sharing PostgreSQL have: leases, fencing, claims and keys across nodes.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { DatabaseFileError, openDatabase, SCHEMA_VERSION, type Db } from '../src/tasks/db.js';
import { TaskEvents } from '../src/tasks/events.js';
import { GroupCommit } from '../src/tasks/group-commit.js';
import type { CreateParams } from '../src/tasks/model.js';
import { SqliteTaskStore } from '../src/tasks/sqlite-store.js';
import { KeyTaken, type NewTask, type StateChange, type TaskStore } from '../src/tasks/store.js';
import { PgTaskStore } from '../src/tasks/pg-store.js';
import { migratePg, openPool, PG_SCHEMA_VERSION } from '../src/tasks/pg-schema.js';
import pg from 'pg';
import { startPostgres } from './helpers/postgres.js';
import { execFileSync } from 'node:child_process';
import { v7 as uuidv7 } from 'uuid';
import { liveInstancesOfTask, startMoto, startService, tempDir, untilTerminal } from './helpers/harness.js';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const isIso = (value: string | null) => value !== null && ISO.test(value) && new Date(value).toISOString() === value;

/** The part of a tap test these helpers need. */
interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh database file in its own temp dir, closed when the test ends. */
function freshDb(t: Teardown): { db: Db; file: string } {
  const file = path.join(tempDir(), 'nested', 'dir', 'tasks.db');
  const db = openDatabase(file);
  t.teardown(() => {
    if (db.open) db.close();
  });
  return { db, file };
}

/** The SQLite store on `db`, with every change its hook is told of. */
function storeOn(db: Db, changes: StateChange[] = []): TaskStore {
  return new SqliteTaskStore(db, new GroupCommit(db), new TaskEvents(db), (change) => changes.push(change));
}

/** Plain SQL on a store's database, for what a test checks or breaks behind the store's back (`?` placeholders on both). */
interface Sql {
  all(query: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  run(query: string, params?: unknown[]): Promise<void>;
  /** The `n` of a one-row count. */
  count(query: string): Promise<number>;
  /** One row, every value as a number (PostgreSQL answers counts and sums as text). */
  numbers(query: string): Promise<Record<string, number>>;
}

interface Fresh {
  store: TaskStore;
  changes: StateChange[];
  sql: Sql;
}

interface Backend {
  name: string;
  fresh(t: Teardown): Promise<Fresh>;
}

function sqlOf(all: Sql['all'], run: Sql['run']): Sql {
  const one = async (query: string) => (await all(query))[0] ?? {};
  return {
    all,
    run,
    count: async (query) => Number((await one(query)).n),
    numbers: async (query) => Object.fromEntries(Object.entries(await one(query)).map(([k, v]) => [k, Number(v)])),
  };
}

const SQLITE: Backend = {
  name: 'SQLite',
  async fresh(t) {
    const { db } = freshDb(t);
    const changes: StateChange[] = [];
    const sql = sqlOf(
      async (query, params = []) => db.prepare(query).all(...params) as Record<string, unknown>[],
      async (query, params = []) => void db.prepare(query).run(...params),
    );
    return { store: storeOn(db, changes), changes, sql };
  },
};

// One cluster for this file; a new database for each test.
const cluster = await startPostgres();
t.teardown(() => cluster.stop());

/** `?` → `$1, $2, …` */
const numbered = (query: string) => {
  let n = 0;
  return query.replace(/\?/g, () => `$${++n}`);
};

/** A fresh database on the cluster, migrated, and a pool on it (ended with the test). */
async function freshPool(t: Teardown): Promise<{ pool: pg.Pool; sql: Sql; url: string }> {
  const url = await cluster.database();
  const pool = openPool(url);
  t.teardown(() => pool.end());
  await migratePg(pool);
  const sql = sqlOf(
    async (query, params = []) => (await pool.query(numbered(query), params)).rows as Record<string, unknown>[],
    async (query, params = []) => void (await pool.query(numbered(query), params)),
  );
  return { pool, sql, url };
}

/** A node's store on `pool`. */
const nodeOn = (pool: pg.Pool, nodeId: string, changes: StateChange[] = [], leaseSeconds = 30) =>
  new PgTaskStore(pool, { nodeId, leaseSeconds }, (change) => changes.push(change));

const POSTGRES: Backend = {
  name: 'PostgreSQL',
  async fresh(t) {
    const { pool, sql } = await freshPool(t);
    const changes: StateChange[] = [];
    return { store: nodeOn(pool, 'node-a', changes), changes, sql };
  },
};

/** The ids of a batch, oldest first. */
const batchIds = async (store: TaskStore, batch: string) => (await store.batch(batch)).map((row) => row.task.id);

const createParams: CreateParams = { username: 'suitepad', password_hash: '$6$salt$hash' };
let counter = 0;
const newId = () => `00000000-0000-4000-8000-${String(++counter).padStart(12, '0')}`;
const create = (): NewTask => ({ id: newId(), action: 'create', params: createParams });
const remove = (ip: string): NewTask => ({ id: newId(), action: 'delete', params: { ip }, ip });

/** Adds tasks one after the other (each its own commit), returning their ids. */
async function addAll(store: TaskStore, tasks: NewTask[]): Promise<string[]> {
  const ids: string[] = [];
  for (const task of tasks) ids.push((await store.add(task)).id);
  return ids;
}

/** Schema 3, as the release before the runs table made it. */
const V3_SCHEMA = `
  CREATE TABLE tasks (id TEXT PRIMARY KEY, action TEXT NOT NULL, status TEXT NOT NULL, params TEXT NOT NULL, ip TEXT,
    instance_id TEXT, instance_state TEXT, error TEXT, progress TEXT, log TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
    runner_pid INTEGER, runner_start TEXT, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0, batch_id TEXT, log_tail TEXT NOT NULL DEFAULT '', log_size INTEGER NOT NULL DEFAULT 0);
  CREATE INDEX tasks_status ON tasks (status); CREATE INDEX tasks_created ON tasks (created_at); CREATE INDEX tasks_ip ON tasks (ip);
  CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, request_hash TEXT NOT NULL, task_id TEXT NOT NULL REFERENCES tasks (id), expires_at TEXT NOT NULL);
  CREATE INDEX idempotency_expiry ON idempotency_keys (expires_at);
  CREATE TABLE service_owner (id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL, start_time TEXT NOT NULL);
  CREATE TABLE task_events (id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL REFERENCES tasks (id), at TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL);
  CREATE INDEX task_events_task ON task_events (task_id, id);`;

const mode = (file: string) => (fs.statSync(file).mode & 0o777).toString(8);

t.test('openDatabase', async (t) => {
  t.test('creates the file and its directories with WAL and synchronous=FULL, with no second queue table', async (t) => {
    const { db, file } = freshDb(t);
    t.ok(fs.existsSync(file), 'the file exists, parent directories included');
    t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    t.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL');
    t.equal(db.pragma('foreign_keys', { simple: true }), 1);
    t.equal(db.pragma('busy_timeout', { simple: true }), 2000);
    t.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
    for (const name of ['idempotency_keys', 'runs', 'task_events', 'tasks']) t.ok(tables.includes(name), `table ${name}`);
    t.notOk(tables.includes('queue_items'), 'no second queue table');
    t.notOk(tables.includes('service_owner'), 'the owner is an OS lock now, not a row');
    t.equal(db.pragma('secure_delete', { simple: true }), 1, 'deleted content is zeroed');
    t.equal(db.pragma('auto_vacuum', { simple: true }), 2, 'INCREMENTAL: purges can give pages back');
  });

  t.test('NORMAL sync when asked', async (t) => {
    const db = openDatabase(path.join(tempDir(), 'normal.db'), 'NORMAL');
    t.teardown(() => db.close());
    t.equal(db.pragma('synchronous', { simple: true }), 1, 'NORMAL');
  });

  t.test('the file, -wal and -shm are private from the first byte, in a directory others can read, with umask 022', async (t) => {
    const dir = tempDir();
    fs.chmodSync(dir, 0o755);
    const previous = process.umask(0o022);
    t.teardown(() => process.umask(previous));
    const file = path.join(dir, 'shared.db');
    const db = openDatabase(file);
    t.teardown(() => db.close());
    await addAll(storeOn(db), [create()]); // a write: the WAL holds a hash now
    for (const name of [file, `${file}-wal`, `${file}-shm`]) {
      t.ok(fs.existsSync(name), `${path.basename(name)} exists`);
      t.equal(mode(name), '600', `${path.basename(name)} is readable by its owner only`);
    }
    t.equal(process.umask(), 0o022, 'the process umask is given back');
  });

  t.test('a database file others can read is refused, with the chmod to run', async (t) => {
    const { db, file } = freshDb(t);
    db.close();
    fs.chmodSync(file, 0o644);
    t.throws(() => openDatabase(file), DatabaseFileError);
    t.throws(() => openDatabase(file), { message: new RegExp(`run \`chmod 600 ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\``) });
    fs.chmodSync(file, 0o600);
    const again = openDatabase(file);
    t.teardown(() => again.close());
    t.equal(again.pragma('user_version', { simple: true }), SCHEMA_VERSION, 'opens once it is private');
  });

  t.test('reopening is idempotent and keeps the data', async (t) => {
    const { db, file } = freshDb(t);
    const [id] = await addAll(storeOn(db), [create()]);
    db.close();
    for (let i = 0; i < 2; i++) {
      const again = openDatabase(file);
      t.equal(again.pragma('user_version', { simple: true }), SCHEMA_VERSION, `reopen ${i + 1}: same schema version`);
      t.equal((await storeOn(again).get(id!))?.status, 'queued', `reopen ${i + 1}: the task is still there`);
      again.close();
    }
  });

  t.test('a database of the last release (with better-queue\'s table) is migrated: tasks kept, the second queue dropped', async (t) => {
    const file = path.join(tempDir(), 'old.db');
    const old = new Database(file);
    fs.chmodSync(file, 0o600);
    old.exec(`
      CREATE TABLE tasks (id TEXT PRIMARY KEY, action TEXT NOT NULL, status TEXT NOT NULL, params TEXT NOT NULL, ip TEXT,
        instance_id TEXT, instance_state TEXT, error TEXT, progress TEXT, log TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
        runner_pid INTEGER, runner_start TEXT, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT);
      CREATE INDEX tasks_status ON tasks (status); CREATE INDEX tasks_created ON tasks (created_at);
      CREATE TABLE idempotency_keys (key TEXT PRIMARY KEY, request_hash TEXT NOT NULL, task_id TEXT NOT NULL REFERENCES tasks (id), expires_at TEXT NOT NULL);
      CREATE INDEX idempotency_expiry ON idempotency_keys (expires_at);
      CREATE TABLE queue_items (seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, payload TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0, lock_id TEXT);
      CREATE TABLE service_owner (id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL, start_time TEXT NOT NULL);
      CREATE TABLE task_events (id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL REFERENCES tasks (id), at TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL);
      CREATE INDEX task_events_task ON task_events (task_id, id); CREATE INDEX tasks_ip ON tasks (ip);
      ALTER TABLE tasks ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
      INSERT INTO tasks (id, action, status, params, log, created_at) VALUES ('old-1', 'create', 'queued', '{}', 'PLAY RECAP', '2026-11-27T09:00:00.000Z');
      INSERT INTO queue_items (task_id, payload) VALUES ('old-1', '{"id":"old-1"}');
      PRAGMA user_version = 2;`);
    old.close();
    const db = openDatabase(file);
    t.teardown(() => db.close());
    t.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    const store = storeOn(db);
    t.equal((await store.get('old-1'))?.status, 'queued', 'the task is kept');
    t.equal((await store.waiting()), 1, 'and counted as waiting');
    t.same((await store.getLog('old-1')), { head: 'PLAY RECAP', tail: '', size: 10 }, 'its log is kept, as the beginning');
    t.notOk(db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'queue_items'`).get(), 'queue_items is gone');
  });

  t.test('a database of schema 3 (a log copied into each task of a batch, hashes kept, no auto_vacuum) is migrated and rewritten', async (t) => {
    const file = path.join(tempDir(), 'v3.db');
    const old = new Database(file);
    fs.chmodSync(file, 0o600);
    old.pragma('journal_mode = WAL');
    // Schema 3 exactly as the last release made it: its three migrations, run by hand.
    old.exec(V3_SCHEMA);
    const log = 'PLAY [create] '.repeat(5_000);
    const insert = old.prepare(
      `INSERT INTO tasks (id, action, status, params, batch_id, log, log_tail, log_size, created_at, finished_at)
       VALUES (?, 'create', ?, ?, ?, ?, ?, ?, '2026-11-27T09:00:00.000Z', ?)`,
    );
    const hashed = (n: number) => JSON.stringify({ username: 'suitepad', password_hash: `$6$salt$oldhash${n}` });
    for (let i = 0; i < 20; i++) insert.run(`t-${i}`, 'succeeded', hashed(i), 'batch-a', log, 'END', log.length, '2026-11-27T09:01:00.000Z');
    insert.run('t-other', 'failed', hashed(20), 'batch-b', 'other log', '', 9, '2026-11-27T09:01:00.000Z');
    insert.run('t-queued', 'queued', hashed(21), null, '', '', 0, null);
    insert.run('t-keyed', 'succeeded', hashed(22), 'batch-b', 'other log', '', 9, '2026-11-27T09:01:00.000Z');
    old.prepare(`INSERT INTO idempotency_keys VALUES ('k', 'h', 't-keyed', '2999-01-01T00:00:00.000Z')`).run();
    old.prepare(`INSERT INTO service_owner VALUES (1, 1, 'x')`).run();
    old.pragma('user_version = 3');
    t.equal(old.pragma('auto_vacuum', { simple: true }), 0, 'the old file has no auto_vacuum');
    old.close();

    const db = openDatabase(file);
    t.teardown(() => db.close());
    t.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    t.equal(db.pragma('auto_vacuum', { simple: true }), 2, 'rewritten (VACUUM) with auto_vacuum=INCREMENTAL');
    const store = storeOn(db);
    for (const id of ['t-0', 't-19']) t.same((await store.getLog(id)), { head: log, tail: 'END', size: log.length }, `${id} reads its log as before`);
    t.same((await store.getLog('t-other')), { head: 'other log', tail: '', size: 9 });
    t.same((await store.getLog('t-queued')), { head: '', tail: '', size: 0 }, 'no log, none made up');
    const runs = db.prepare('SELECT count(*) AS n FROM runs').get() as { n: number };
    t.equal(runs.n, 2, 'one stored log per run: batch-a once (not 20 times), batch-b once');
    t.same((await store.paramsOf('t-0')), { username: 'suitepad' }, 'an ended task no longer holds its hash');
    t.same((await store.paramsOf('t-queued')), { username: 'suitepad', password_hash: '$6$salt$oldhash21' }, 'a queued one keeps it: it will run');
    t.same((await store.paramsOf('t-keyed')), { username: 'suitepad', password_hash: '$6$salt$oldhash22' }, 'a live key keeps it for replays');
    db.pragma('wal_checkpoint(TRUNCATE)');
    const bytes = fs.readFileSync(file).toString('latin1');
    t.notOk(bytes.includes('oldhash0'), 'no dropped hash is left anywhere in the file (the rewrite leaves no old page)');
    t.ok(bytes.includes('oldhash21'), 'while a kept one is there (the check can fail)');
  });

  t.test('a database from a newer ec2-api is refused', async (t) => {
    const { db, file } = freshDb(t);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    t.throws(() => openDatabase(file), {
      message: `the database has schema version ${SCHEMA_VERSION + 1}, newer than this ec2-api (${SCHEMA_VERSION}); run a newer release`,
    });
  });
});

for (const backend of [SQLITE, POSTGRES]) {
 t.test(`${backend.name} store`, async (t) => {
  t.test('add → get: queued, counted as waiting once committed, with its queued event, then the hook', async (t) => {
    const { sql, store, changes } = await backend.fresh(t);
    const before = Date.now();
    const task = create();
    const adding = store.add(task);
    // SQLite commits on a later tick; a PostgreSQL count on another connection may come before or after the commit.
    if (backend === SQLITE) t.equal(await store.waiting(), 0, 'not counted before the commit');
    t.equal(changes.length, 0, 'nobody is told before the commit');
    const added = await adding;
    t.equal((await store.waiting()), 1);
    const read = (await store.get(task.id))!;
    t.same(added, read, 'add returns exactly what a read of the new row returns');
    t.match(read, { id: task.id, action: 'create', status: 'queued', attempts: 0, cancel_requested: false });
    t.ok(isIso(read.created_at) && Date.parse(read.created_at) >= before - 1, 'created_at is now');
    for (const field of ['ip', 'instance_id', 'instance_state', 'error', 'progress', 'runner_pid', 'runner_start', 'started_at', 'finished_at'] as const) {
      t.equal(read[field], null, `${field} is null until known`);
    }
    t.same(changes.map((c) => [c.task.id, c.event.type, c.event.data.status]), [[task.id, 'status', 'queued']], 'one change, told once');
    const stored = await sql.all('SELECT task_id, type FROM task_events ORDER BY id');
    t.same(stored, [{ task_id: task.id, type: 'status' }], 'its status event is stored with it');
    t.same((await store.paramsOf(task.id)), createParams, 'the parameters round-trip, as unknown until checked');
    t.same((await store.getLog(task.id)), { head: '', tail: '', size: 0 });
    const del = await store.add(remove('54.1.2.3'));
    t.equal(del.ip, '54.1.2.3', 'a delete keeps its target IP');
    t.equal((await store.get('no-such-task')), undefined);
    await t.rejects(store.add({ ...create(), id: task.id }), 'a duplicate id is refused');
    t.equal((await store.waiting()), 2, 'and not counted');
    t.equal(changes.length, 2, 'nor told');
    t.equal(await sql.count('SELECT count(*) AS n FROM task_events'), 2, 'nor its event stored');
  });

  t.test('claim: the oldest waiting tasks, up to the limit, under one batch id', async (t) => {
    const { store, changes } = await backend.fresh(t);
    const ids = await addAll(store, [create(), create(), create(), create()]);
    t.equal(await store.claim('batch-1', 3), 3);
    t.equal((await store.waiting()), 1);
    const batch = (await store.batch('batch-1'));
    t.same(batch.map((row) => row.task.id), ids.slice(0, 3), 'oldest first');
    for (const { task, params } of batch) {
      t.match(task, { status: 'running', attempts: 1 });
      t.ok(isIso(task.started_at), 'started_at set');
      t.same(params, createParams);
    }
    t.same(
      changes.slice(4).map((c) => [c.task.id, c.event.data.status]),
      ids.slice(0, 3).map((id) => [id, 'running']),
      'a running event each, in order',
    );
    t.equal(await store.claim('batch-2', 3), 1, 'the rest');
    t.equal(await store.claim('batch-3', 3), 0, 'nothing waits');
    t.equal((await store.batch('batch-2')).length, 1, 'the second batch holds the one that was left');
  });

  t.test('claim: two operations on one IP never share a batch or run at once', async (t) => {
    const { store } = await backend.fresh(t);
    const [a1, a2, b1, c1, a3] = await addAll(store, [remove('10.0.0.1'), remove('10.0.0.1'), remove('10.0.0.2'), create(), remove('10.0.0.1')]);
    t.equal(await store.claim('first', 10), 3);
    t.same((await batchIds(store, 'first')), [a1, b1, c1], 'one delete per IP, creates alongside');
    t.equal(await store.claim('second', 10), 0, 'the other deletes of 10.0.0.1 wait while one runs');
    await store.finish(a1!, { status: 'succeeded', instance_state: 'terminated' });
    t.equal(await store.claim('third', 10), 1);
    t.same((await batchIds(store, 'third')), [a2], 'then the next one, alone');
    await store.finish(a2!, { status: 'failed', instance_state: 'not_found' });
    t.equal(await store.claim('fourth', 10), 1);
    t.same((await batchIds(store, 'fourth')), [a3]);
  });

  t.test('progress and runner only while running; finish once, and it clears the runner', async (t) => {
    const { store, changes } = await backend.fresh(t);
    const [id, other] = await addAll(store, [create(), create()]);
    (await store.setProgress([id!], { step: 1, of: 4, name: 'queued step' }));
    t.equal((await store.get(id!))!.progress, null, 'a queued task has no progress');
    await store.claim('b', 2);
    (await store.setProgress([id!], { step: 2, of: 4, name: 'launch instance' }));
    t.same((await store.get(id!))!.progress, { step: 2, of: 4, name: 'launch instance' });
    (await store.setRunner([id!, other!], 4242, '123456'));
    t.match((await store.get(other!)), { runner_pid: 4242, runner_start: '123456' });

    const told = changes.length;
    const done = (await store.finish(id!, { status: 'succeeded', ip: '54.1.2.3', instance_id: 'i-0123', instance_state: 'running' }, { runId: 'run-0', log: { head: 'LOG', tail: '', size: 3 } }))!;
    t.same(done, (await store.get(id!)), 'finish returns the task as it now stands');
    t.match(done, { status: 'succeeded', ip: '54.1.2.3', instance_id: 'i-0123', instance_state: 'running', error: null, runner_pid: null });
    t.same(done.progress, { step: 4, of: 4, name: 'done' }, 'a succeeded task says it is done, not the step its result came at');
    t.same((await store.getLog(id!)), { head: 'LOG', tail: '', size: 3 }, 'its log, in the same write');
    t.ok(isIso(done.finished_at));
    t.same(changes.slice(told).map((c) => [c.task.id, c.event.data.status]), [[id, 'succeeded']], 'told once, with its event');
    t.equal(await store.finish(id!, { status: 'failed', error: 'late' }), undefined, 'a second finish is refused');
    t.same((await store.get(id!)), done, 'and changes nothing');
    t.equal(changes.length, told + 1, 'and tells nobody');
    (await store.setProgress([id!], { step: 3, of: 4, name: 'after the end' }));
    t.same((await store.get(id!))!.progress, { step: 4, of: 4, name: 'done' }, 'a finished task keeps its last progress');
    t.equal((await store.get(other!))!.runner_pid, 4242, 'the other task keeps its runner');

    (await store.setProgress([other!], { step: 2, of: 4, name: 'launch instance' }));
    await store.finish(other!, { status: 'failed', error: 'boom' });
    t.same((await store.get(other!))!.progress, { step: 2, of: 4, name: 'launch instance' }, 'a failed task keeps the step it stopped at');
  });

  t.test('a row whose progress is not readable reads as no progress, and still ends', async (t) => {
    const { sql, store } = await backend.fresh(t);
    const [broken, odd] = await addAll(store, [create(), create()]);
    await store.claim('b', 2);
    await sql.run(`UPDATE tasks SET progress = '{"step": 1, "of"' WHERE id = ?`, [broken]);
    await sql.run(`UPDATE tasks SET progress = '{"step": "one", "of": 4, "name": "x"}' WHERE id = ?`, [odd]);
    t.equal((await store.get(broken!))!.progress, null, 'broken JSON');
    t.equal((await store.get(odd!))!.progress, null, 'JSON of another shape');
    t.same((await store.list({ limit: 10 })).map((task) => task.progress), [null, null], 'the listing reads too');
    t.same((await store.unfinished()).map((task) => task.id), [broken, odd], 'and recovery');
    t.match(await store.finish(broken!, { status: 'succeeded' }), { status: 'succeeded', progress: { step: 1, of: 1, name: 'done' } });
  });

  t.test('a delete that ends without an ip keeps the one it targeted; logs are stored capped', async (t) => {
    const { store } = await backend.fresh(t);
    const [del] = await addAll(store, [remove('54.9.9.9')]);
    await store.claim('b', 1);
    await store.finish(del!, { status: 'failed', instance_state: 'not_found', error: 'no managed instance has public IP 54.9.9.9' });
    t.match((await store.get(del!)), { ip: '54.9.9.9', instance_state: 'not_found' });
    (await store.setLog('run-1', [del!], { head: 'HEAD', tail: 'TAIL', size: 100 }));
    t.same((await store.getLog(del!)), { head: 'HEAD', tail: 'TAIL', size: 100 });
  });

  t.test('a run\'s log is stored once for all its tasks; a log no task points to goes', async (t) => {
    const { sql, store } = await backend.fresh(t);
    const ids = await addAll(store, Array.from({ length: 100 }, create));
    await store.claim('b', 100);
    const big = { head: 'h'.repeat(64 * 1024), tail: 't'.repeat(1024 * 1024), size: 5_000_000 };
    const stored = async () => sql.numbers('SELECT count(*) AS n, coalesce(sum(length(head) + length(tail)), 0) AS bytes FROM runs');
    await store.finish(ids[0]!, { status: 'succeeded' }, { runId: 'run-a', log: { head: 'early', tail: '', size: 5 } }); // one task's result came early
    await store.finish(ids[1]!, { status: 'succeeded' }, { runId: 'run-a', log: { head: 'early, and more', tail: '', size: 15 } }); // and another's
    t.same((await store.getLog(ids[1]!)), { head: 'early', tail: '', size: 5 }, 'while the run goes on, the output is stored once, not rewritten');
    (await store.setLog('run-a', ids, big)); // the run ended
    t.same((await stored()), { n: 1, bytes: big.head.length + big.tail.length }, 'one copy of 1.06 MiB, not 100');
    for (const id of [ids[0]!, ids[99]!]) t.same((await store.getLog(id)), big, 'each task reads the whole log');
    (await store.setLog('cleanup', [ids[0]!], { head: 'cleanup', tail: '', size: 7 }));
    t.equal((await stored()).n, 2, 'a clean-up run of one task has its own log');
    (await store.setLog('cleanup-2', ids, { head: 'again', tail: '', size: 5 }));
    t.same((await stored()), { n: 1, bytes: 5 }, 'logs nothing points to are deleted');
  });

  t.test('requeue: back to waiting, with or without the attempt refunded; never a finished task', async (t) => {
    const { store, changes } = await backend.fresh(t);
    const [id] = await addAll(store, [create()]);
    await store.claim('b1', 1);
    const firstStart = (await store.get(id!))!.started_at;
    (await store.setRunner([id!], 99, 'x'));
    const told = changes.length;
    t.same((await store.requeue([id!], false)).map((task) => task.id), [id], 'the task it moved');
    t.match((await store.get(id!)), { status: 'queued', attempts: 1, runner_pid: null, runner_start: null, progress: null });
    t.same(changes.slice(told).map((c) => c.event.data.status), ['queued'], 'told, with its queued event');
    t.equal((await store.waiting()), 1, 'waiting again');
    await store.claim('b2', 1);
    t.match((await store.get(id!)), { attempts: 2, started_at: firstStart }, 'started_at is the first start');
    await store.requeue([id!], true);
    t.equal((await store.get(id!))!.attempts, 1, 'with refund the attempt is given back');
    const again = changes.length;
    t.same(await store.requeue([id!], true), [], 'requeue of a queued task moves nothing');
    t.equal((await store.get(id!))!.attempts, 1, 'and changes nothing');
    t.equal(changes.length, again, 'and tells nobody');
    t.equal((await store.waiting()), 1);
    await store.claim('b3', 1);
    await store.finish(id!, { status: 'succeeded' });
    await store.requeue([id!], false);
    t.equal((await store.get(id!))!.status, 'succeeded', 'a finished task is never requeued');
    t.equal((await store.waiting()), 0);
  });

  t.test('cancel: a task that never ran, or any queued delete, ends at once; a create that ran has its cancel recorded; a running delete neither', async (t) => {
    const { store, changes } = await backend.fresh(t);
    const [runningCreate, queuedCreate, runningDelete, ranDelete] = await addAll(store, [create(), create(), remove('10.0.0.1'), remove('10.0.0.2')]);
    await store.claim('b', 1); // takes the first create, the oldest
    const told = changes.length;
    t.match(await store.cancelQueued(queuedCreate!), { status: 'canceled', error: 'canceled by request', started_at: null }, 'the waiting one');
    t.same(changes.slice(told).map((c) => [c.task.id, c.event.data.status]), [[queuedCreate, 'canceled']], 'told once');
    t.equal((await store.waiting()), 2);
    t.equal(await store.cancelQueued(runningCreate!), undefined, 'not the running one');
    t.equal((await store.get(runningCreate!))!.cancel_requested, false);
    t.equal(await store.requestCancel(runningCreate!), true);
    t.equal((await store.get(runningCreate!))!.cancel_requested, true, 'recorded in its row, where it survives a crash');
    t.equal(await store.requestCancel(queuedCreate!), false, 'a canceled task is not running');

    // A delete that ran before (its run was stopped by a shutdown) and waits again: nothing to clean up, it ends at once.
    await store.claim('d', 5);
    await store.requeue([ranDelete!], true);
    t.match(await store.cancelQueued(ranDelete!), { status: 'canceled' }, 'a queued delete that ran before');
    t.equal(await store.cancelQueued(runningDelete!), undefined, 'a running delete is not canceled');
    t.equal(await store.requestCancel(runningDelete!), false, 'nor has a cancel recorded: it may have reached EC2');
    t.equal((await store.get(runningDelete!))!.status, 'running');
    t.equal(await store.claim('again', 5), 0, 'a canceled task is never claimed');
  });

  t.test('unfinished(): queued and running tasks, oldest first', async (t) => {
    const { store } = await backend.fresh(t);
    t.same((await store.unfinished()), []);
    const ids = await addAll(store, [create(), create(), create(), create()]);
    await store.claim('b', 2);
    await store.finish(ids[0]!, { status: 'failed', error: 'x' });
    await store.cancelQueued(ids[3]!);
    t.same(
      (await store.unfinished()).map((task) => [task.id, task.status]),
      [
        [ids[1], 'running'],
        [ids[2], 'queued'],
      ],
    );
  });

  t.test('password hashes: kept while the task may run, or while a live key may replay it', async (t) => {
    const { store } = await backend.fresh(t);
    const hashOf = async (id: string) => ((await store.paramsOf(id)) as { password_hash?: string }).password_hash;
    const [plain, failed] = await addAll(store, [create(), create()]);
    const keyed = create();
    const expiring = create();
    await store.add(keyed, { owner: 'default', key: 'live', request_hash: 'h', ttlSeconds: 3600 });
    await store.add(expiring, { owner: 'default', key: 'short', request_hash: 'h', ttlSeconds: 0.3 });
    await store.claim('b', 10);
    t.equal((await hashOf(plain!)), createParams.password_hash, 'running: kept');
    await store.requeue([plain!], true);
    t.equal((await hashOf(plain!)), createParams.password_hash, 'queued again: kept');
    await store.claim('b2', 10);
    await store.finish(plain!, { status: 'succeeded' });
    t.equal((await hashOf(plain!)), undefined, 'ended: gone');
    t.same((await store.paramsOf(plain!)), { username: 'suitepad' }, 'the rest of the parameters stay');
    await store.finish(failed!, { status: 'failed', error: 'x' });
    t.equal((await hashOf(failed!)), undefined, 'failed: gone');
    await store.finish(keyed.id, { status: 'succeeded' });
    t.equal((await hashOf(keyed.id)), createParams.password_hash, 'ended, but its key lives: kept for a replay to be checked');
    await new Promise((resolve) => setTimeout(resolve, 400));
    await store.finish(expiring.id, { status: 'succeeded' });
    t.equal((await hashOf(expiring.id)), undefined, 'ended after its key expired: gone');
    t.equal((await store.purgeExpiredKeys()), 1);

    const [queued] = await addAll(store, [create()]);
    t.ok(await store.cancelQueued(queued!));
    t.equal((await hashOf(queued!)), undefined, 'canceled while queued: gone');

    // A key that expires after its task ended takes the hash with it when it is purged, or taken over.
    const purged = create();
    const takenOver = create();
    await store.add(purged, { owner: 'default', key: 'p', request_hash: 'h', ttlSeconds: 0.3 });
    await store.add(takenOver, { owner: 'default', key: 'o', request_hash: 'h', ttlSeconds: 0.3 });
    await store.claim('b3', 10);
    await store.finish(purged.id, { status: 'succeeded' });
    await store.finish(takenOver.id, { status: 'succeeded' });
    t.equal((await hashOf(purged.id)), createParams.password_hash, 'kept while the key lives');
    await new Promise((resolve) => setTimeout(resolve, 400));
    await store.add(create(), { owner: 'default', key: 'o', request_hash: 'h2', ttlSeconds: 3600 });
    t.equal((await hashOf(takenOver.id)), undefined, 'its expired key taken over by a new request: gone');
    t.equal((await hashOf(purged.id)), createParams.password_hash, 'not yet purged');
    (await store.purgeExpiredKeys());
    t.equal((await hashOf(purged.id)), undefined, 'its key purged: gone');
  });

  t.test('purgeEnded: tasks ended before the cutoff go, with their events and logs; never a queued, running or keyed one', async (t) => {
    const { sql, store } = await backend.fresh(t);
    const ids = await addAll(store, Array.from({ length: 5 }, create));
    const keyed = create();
    await store.add(keyed, { owner: 'default', key: 'k', request_hash: 'h', ttlSeconds: 3600 });
    const [queued] = await addAll(store, [create()]);
    await store.claim('b', 6); // the five and the keyed one; `queued` stays queued
    const [running, ...ending] = ids;
    for (const id of [...ending, keyed.id]) await store.finish(id!, { status: 'succeeded' });
    (await store.setLog('run', [...ids, keyed.id], { head: 'log', tail: '', size: 3 }));
    const count = (query: string) => sql.count(query);

    t.equal((await store.purgeEnded(new Date(Date.now() - 60_000).toISOString(), 100)), 0, 'nothing ended before a minute ago');
    const cutoff = new Date(Date.now() + 1_000).toISOString();
    t.equal((await store.purgeEnded(cutoff, 3)), 3, 'at most the batch size');
    t.equal((await store.purgeEnded(cutoff, 3)), 1, 'then the rest');
    t.equal((await store.purgeEnded(cutoff, 3)), 0);
    for (const id of ending) t.equal((await store.get(id!)), undefined, 'an ended task is gone');
    t.equal(await count(`SELECT count(*) AS n FROM task_events WHERE task_id IN (${ending.map((id) => `'${id}'`).join(',')})`), 0, 'with its events');
    t.equal((await store.get(running!))?.status, 'running', 'a running task stays');
    t.equal((await store.get(queued!))?.status, 'queued', 'a queued task stays');
    t.equal((await store.get(keyed.id))?.status, 'succeeded', 'a task a key points to stays');
    t.same((await store.getLog(running!)), { head: 'log', tail: '', size: 3 }, 'the shared log stays while a task points to it');
    t.equal(await count('SELECT count(*) AS n FROM task_events WHERE task_id = ' + `'${running}'`), 2, 'the events of a kept task stay (queued, running)');

    await store.finish(running!, { status: 'failed', error: 'x' });
    await sql.run(`UPDATE idempotency_keys SET expires_at = '2000-01-01T00:00:00.000Z'`);
    (await store.purgeExpiredKeys());
    t.equal((await store.purgeEnded(new Date(Date.now() + 1_000).toISOString(), 100)), 2, 'the last two, once ended and unkeyed');
    t.equal(await count('SELECT count(*) AS n FROM runs'), 0, 'and the log goes with the last task of its run');
  });

  t.test('idempotency keys', async (t) => {
    t.test('add with a key → findKey; expired keys are not found, purged, and taken over', async (t) => {
      const { sql, store } = await backend.fresh(t);
      const first = create();
      await store.add(first, { owner: 'default', key: 'key-1', request_hash: 'hash-1', ttlSeconds: 3600 });
      t.same((await store.findKey('default', 'key-1')), { key: 'key-1', request_hash: 'hash-1', task_id: first.id });
      t.equal((await store.findKey('default', 'key-2')), undefined);

      await store.add(create(), { owner: 'default', key: 'old', request_hash: 'h', ttlSeconds: -1 });
      t.equal((await store.findKey('default', 'old')), undefined, 'expired: not found');
      const keys = async () => ((await sql.all('SELECT key FROM idempotency_keys ORDER BY key')) as { key: string }[]).map((r) => r.key);
      t.same(await keys(), ['key-1', 'old'], 'still stored until purged');
      t.equal((await store.purgeExpiredKeys()), 1);
      t.same(await keys(), ['key-1']);

      const later = create();
      await store.add(create(), { owner: 'default', key: 'reused', request_hash: 'h1', ttlSeconds: -1 });
      await store.add(later, { owner: 'default', key: 'reused', request_hash: 'h2', ttlSeconds: 3600 });
      t.same((await store.findKey('default', 'reused')), { key: 'reused', request_hash: 'h2', task_id: later.id }, 'a new task takes over an expired key');
    });

    t.test('keys are per owner: the same key from two owners names two tasks, and neither finds the other', async (t) => {
      const { store } = await backend.fresh(t);
      const alices = create();
      const bobs = create();
      await store.add(alices, { owner: 'alice', key: 'deploy-1', request_hash: 'h', ttlSeconds: 3600 });
      t.equal((await store.findKey('bob', 'deploy-1')), undefined, "bob does not find alice's key");
      await store.add(bobs, { owner: 'bob', key: 'deploy-1', request_hash: 'h', ttlSeconds: 3600 });
      t.equal((await store.findKey('alice', 'deploy-1'))?.task_id, alices.id);
      t.equal((await store.findKey('bob', 'deploy-1'))?.task_id, bobs.id);
    });

    t.test('task and key are written in one transaction', async (t) => {
      const { store } = await backend.fresh(t);
      const task = create();
      await store.add(task, undefined);
      await t.rejects(store.add({ ...create(), id: task.id }, { owner: 'default', key: 'orphan', request_hash: 'h', ttlSeconds: 3600 }));
      t.equal((await store.findKey('default', 'orphan')), undefined, 'a failed insert leaves no key behind');
    });
  });
 });
}

t.test('after a batch has run and ended, the closed file holds none of its hashes, not even in free space (secure_delete)', async (t) => {
  // The same writes a batch makes: claim, runner, progress (each moves the row, leaving its old copy behind), finish.
  const runBatch = async (secureDelete: boolean) => {
    const { db, file } = freshDb(t);
    if (!secureDelete) db.pragma('secure_delete = OFF'); // the control: what the file would hold without it
    const store = storeOn(db);
    const tasks = Array.from({ length: 20 }, (_, i): NewTask => ({
      id: newId(),
      action: 'create',
      params: { username: 'suitepad', password_hash: `$6$saltsalt$${String(i).padStart(86, 'h')}` },
    }));
    await addAll(store, tasks);
    await store.claim('b', 20);
    (await store.setRunner(tasks.map((task) => task.id), 4242, '123456'));
    (await store.setProgress(tasks.map((task) => task.id), { step: 2, of: 4, name: 'Launch one instance per task and wait until it runs' }));
    for (const task of tasks) await store.finish(task.id, { status: 'succeeded', ip: '54.1.2.3', instance_id: 'i-0123456789abcdef0', instance_state: 'running' });
    db.close();
    return (fs.readFileSync(file).toString('latin1').match(/\$6\$saltsalt\$h*\d+/g) ?? []).length;
  };
  t.ok((await runBatch(false)) > 0, 'without secure_delete, old copies of the rows keep hashes in the file (so the check can find them)');
  t.equal(await runBatch(true), 0, 'with it, none is left');
});

t.test('the tasks table is the only queue: a row written with SQL alone is counted, claimed, and run after a restart', async (t) => {
  const moto = await startMoto();
  t.teardown(() => moto.stop());
  const file = path.join(tempDir(), 'ec2-api.db');
  await (await startService(moto.url, { EC2_API_DB: file, EC2_API_PAUSED: '1' })).close(); // the schema, nothing else

  // One INSERT from another connection: no push, no second record anywhere.
  const id = uuidv7();
  const password_hash = execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: 'only-a-row\n', encoding: 'utf8' }).trim();
  const conn = new Database(file);
  conn
    .prepare(`INSERT INTO tasks (id, action, status, params, created_at) VALUES (?, 'create', 'queued', ?, ?)`)
    .run(id, JSON.stringify({ username: 'sqlonly', password_hash }), new Date().toISOString());
  conn.close();

  const db = openDatabase(file);
  const store = storeOn(db);
  t.equal((await store.waiting()), 1, 'a store opened on the file counts it as waiting');
  db.close();

  const service = await startService(moto.url, { EC2_API_DB: file });
  t.teardown(() => service.close());
  const task = await untilTerminal(service.tasks, id);
  t.match(task, { status: 'succeeded', instance_state: 'running', attempts: 1 }, 'the started service claimed and ran it');
  t.equal(liveInstancesOfTask(moto.url, id).length, 1, 'its instance runs');
});
t.test('PostgreSQL: nodes sharing one database', async (t) => {
  t.test('the schema is migrated once, however many nodes start at once, to the same version as SQLite', async (t) => {
    const url = await cluster.database();
    const pools = [openPool(url), openPool(url), openPool(url)];
    t.teardown(() => Promise.all(pools.map((pool) => pool.end())));
    await Promise.all(pools.map((pool) => migratePg(pool)));
    const { rows } = await pools[0]!.query('SELECT version FROM schema_version');
    t.same(rows, [{ version: PG_SCHEMA_VERSION }]);
    t.equal(PG_SCHEMA_VERSION, SCHEMA_VERSION, 'the same numbered migrations as SQLite');
    const columns = async (table: string) =>
      (await pools[0]!.query(`SELECT column_name FROM information_schema.columns WHERE table_name = $1`, [table])).rows.map((r) => r.column_name as string);
    const { db } = freshDb(t);
    const sqliteColumns = (table: string) => (db.prepare(`SELECT name FROM pragma_table_info('${table}')`).all() as { name: string }[]).map((r) => r.name);
    for (const table of ['tasks', 'task_events', 'runs', 'idempotency_keys']) {
      const extra = table === 'tasks' ? ['seq'] : []; // SQLite's rowid, named
      t.same((await columns(table)).sort(), [...sqliteColumns(table), ...extra].sort(), `${table}: the same columns`);
    }
  });

  t.test('three nodes claiming at once take every task exactly once, oldest first in each batch', async (t) => {
    const { pool } = await freshPool(t);
    const nodes = ['a', 'b', 'c'].map((name) => nodeOn(pool, name));
    const ids = await addAll(nodes[0]!, Array.from({ length: 60 }, create));
    const taken: string[] = [];
    await Promise.all(
      nodes.map(async (node, n) => {
        for (let i = 0; ; i++) {
          const batch = `${n}-${i}`;
          if ((await node.claim(batch, 7)) === 0) return;
          const got = await batchIds(node, batch);
          t.same(got, [...got].sort((x, y) => ids.indexOf(x) - ids.indexOf(y)), 'a batch is in arrival order');
          taken.push(...got);
        }
      }),
    );
    t.equal(taken.length, 60, 'sixty claims');
    t.same([...new Set(taken)].sort(), [...ids].sort(), 'each task once');
  });

  t.test('one delete per IP across nodes: three nodes claiming three deletes of one IP run one', async (t) => {
    const { pool } = await freshPool(t);
    const nodes = ['a', 'b', 'c'].map((name) => nodeOn(pool, name));
    const [first] = await addAll(nodes[0]!, [remove('10.9.9.9'), remove('10.9.9.9'), remove('10.9.9.9')]);
    const claimed = await Promise.all(nodes.map((node, i) => node.claim(`b${i}`, 10)));
    t.equal(claimed.reduce((a, b) => a + b, 0), 1, 'one claim in all');
    t.same((await nodes[0]!.unfinished()).filter((task) => task.status === 'running').map((task) => task.id), [first], 'the oldest');
  });

  t.test('a lease lapses: another node requeues the task and runs it; the late writes of the first change nothing', async (t) => {
    const { pool } = await freshPool(t);
    const changes: StateChange[] = [];
    const a = nodeOn(pool, 'node-a', [], 1);
    const b = nodeOn(pool, 'node-b', changes, 1);
    const [id] = await addAll(a, [create()]);
    t.equal(await a.claim('a1', 5), 1);
    t.match(await a.get(id!), { status: 'running', attempts: 1 });
    t.equal(await b.claim('b1', 5), 0, 'a running task is not claimed again');
    t.same((await a.heartbeat()).lost, [], 'renewed while its node beats');
    t.same(await b.expireLeases(), [], 'a live lease is not expired');

    await new Promise((resolve) => setTimeout(resolve, 1_300)); // node A stops beating (it died, or hangs)
    const requeued = await b.expireLeases();
    t.same(requeued.map((task) => [task.id, task.status, task.attempts]), [[id, 'queued', 1]], 'requeued by the other node, the attempt kept');
    t.same(changes.map((c) => c.event.data.status), ['queued'], 'with its queued event');
    t.equal(await b.claim('b2', 5), 1);
    t.match(await b.get(id!), { status: 'running', attempts: 2 });

    // Node A wakes up and writes what its run found: fenced by the attempt it claimed.
    await a.setProgress([id!], { step: 3, of: 4, name: 'late' });
    await a.setRunner([id!], 1, 'late');
    t.equal(await a.finish(id!, { status: 'failed', error: 'late result' }), undefined, 'a late finish is refused');
    t.same(await a.requeue([id!], true), [], 'and a late requeue');
    t.match(await b.get(id!), { status: 'running', attempts: 2, progress: null, runner_pid: null }, 'the task is as node B left it');
    t.same((await a.heartbeat()).lost, [], 'node A no longer holds it');

    t.match(await b.finish(id!, { status: 'succeeded', ip: '54.1.2.3' }), { status: 'succeeded', ip: '54.1.2.3' }, 'node B ends it');
  });

  t.test('a heartbeat loses a task another node took over, and sees a cancel asked for on another node', async (t) => {
    const { pool } = await freshPool(t);
    const a = nodeOn(pool, 'node-a', [], 1);
    const b = nodeOn(pool, 'node-b', [], 1);
    const [kept, lost] = await addAll(a, [create(), create()]);
    await a.claim('a1', 5);
    t.equal(await b.requestCancel(kept!), true, 'the cancel is recorded by node B');
    t.same(await a.heartbeat(), { lost: [], cancelRequested: [kept] }, 'node A sees it at its next beat');
    await pool.query(`UPDATE tasks SET lease_until = '2000-01-01T00:00:00.000Z' WHERE id = $1`, [lost]);
    await b.expireLeases();
    await b.claim('b1', 5);
    t.same((await a.heartbeat()).lost, [lost], 'the task B runs now is lost to A');
  });

  t.test('one idempotency key sent to two nodes at once stores one task', async (t) => {
    const { pool, sql } = await freshPool(t);
    const a = nodeOn(pool, 'node-a');
    const b = nodeOn(pool, 'node-b');
    const key = { owner: 'default', key: 'same', request_hash: 'h', ttlSeconds: 3600 };
    const results = await Promise.allSettled([a.add(create(), key), b.add(create(), key)]);
    const stored = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    t.equal(stored.length, 1, 'one add stored its task');
    t.equal(refused.length, 1);
    t.ok(refused[0]!.reason instanceof KeyTaken, 'the other is told the key is taken (the intake then replays it)');
    t.equal(await sql.count('SELECT count(*) AS n FROM tasks'), 1, 'one task');
    t.equal((await b.findKey('default', 'same'))?.task_id, (stored[0] as PromiseFulfilledResult<{ id: string }>).value.id);
  });
});
