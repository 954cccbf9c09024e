// The database and the task store: the tasks table is the queue. Every
// transition of docs/task-lifecycle.md that the store makes, on a real
// SQLite file.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { DatabaseFileError, openDatabase, SCHEMA_VERSION, type Db } from '../src/tasks/db.js';
import { GroupCommit } from '../src/tasks/group-commit.js';
import type { CreateParams } from '../src/tasks/model.js';
import { TaskStore, type NewTask } from '../src/tasks/store.js';
import { tempDir } from './helpers/harness.js';

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

function freshStore(t: Teardown): { db: Db; store: TaskStore } {
  const { db } = freshDb(t);
  return { db, store: new TaskStore(db, new GroupCommit(db)) };
}

const createParams: CreateParams = { username: 'suitepad', password_hash: '$6$salt$hash' };
let counter = 0;
const newId = () => `00000000-0000-4000-8000-${String(++counter).padStart(12, '0')}`;
const create = (): NewTask => ({ id: newId(), action: 'create', params: createParams });
const remove = (ip: string): NewTask => ({ id: newId(), action: 'delete', params: { ip }, ip });

/** Adds tasks one after the other (each its own commit), returning their ids. */
async function addAll(store: TaskStore, tasks: NewTask[]): Promise<string[]> {
  const ids: string[] = [];
  for (const task of tasks) ids.push((await store.add(task, undefined, () => undefined)).task.id);
  return ids;
}

const mode = (file: string) => (fs.statSync(file).mode & 0o777).toString(8);

t.test('openDatabase', async (t) => {
  t.test('creates the file and its directories with WAL and synchronous=FULL; the tasks table is the only queue', async (t) => {
    const { db, file } = freshDb(t);
    t.ok(fs.existsSync(file), 'the file exists, parent directories included');
    t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    t.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL');
    t.equal(db.pragma('foreign_keys', { simple: true }), 1);
    t.equal(db.pragma('busy_timeout', { simple: true }), 2000);
    t.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
    for (const name of ['idempotency_keys', 'service_owner', 'task_events', 'tasks']) t.ok(tables.includes(name), `table ${name}`);
    t.notOk(tables.includes('queue_items'), 'no second queue table');
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
    await addAll(new TaskStore(db, new GroupCommit(db)), [create()]); // a write: the WAL holds a hash now
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
    const [id] = await addAll(new TaskStore(db, new GroupCommit(db)), [create()]);
    db.close();
    for (let i = 0; i < 2; i++) {
      const again = openDatabase(file);
      t.equal(again.pragma('user_version', { simple: true }), SCHEMA_VERSION, `reopen ${i + 1}: same schema version`);
      t.equal(new TaskStore(again, new GroupCommit(again)).get(id!)?.status, 'queued', `reopen ${i + 1}: the task is still there`);
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
    const store = new TaskStore(db, new GroupCommit(db));
    t.equal(store.get('old-1')?.status, 'queued', 'the task is kept');
    t.equal(store.waiting, 1, 'and counted as waiting');
    t.same(store.getLog('old-1'), { head: 'PLAY RECAP', tail: '', size: 10 }, 'its log is kept, as the beginning');
    t.notOk(db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'queue_items'`).get(), 'queue_items is gone');
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

t.test('add → get: queued, counted as waiting once committed', async (t) => {
  const { store } = freshStore(t);
  const before = Date.now();
  const task = create();
  const adding = store.add(task, undefined, (row) => row.id);
  t.equal(store.waiting, 0, 'not counted before the commit');
  const { task: added, alongside } = await adding;
  t.equal(alongside, task.id, 'what is written alongside runs in the same commit');
  t.equal(store.waiting, 1);
  const read = store.get(task.id)!;
  t.same(added, read, 'add returns exactly what a read of the new row returns');
  t.match(read, { id: task.id, action: 'create', status: 'queued', attempts: 0, cancel_requested: false });
  t.ok(isIso(read.created_at) && Date.parse(read.created_at) >= before - 1, 'created_at is now');
  for (const field of ['ip', 'instance_id', 'instance_state', 'error', 'progress', 'runner_pid', 'runner_start', 'started_at', 'finished_at'] as const) {
    t.equal(read[field], null, `${field} is null until known`);
  }
  t.same(store.paramsOf(task.id), createParams, 'the parameters round-trip, as unknown until checked');
  t.same(store.getLog(task.id), { head: '', tail: '', size: 0 });
  const del = await store.add(remove('54.1.2.3'), undefined, () => undefined);
  t.equal(del.task.ip, '54.1.2.3', 'a delete keeps its target IP');
  t.equal(store.get('no-such-task'), undefined);
  await t.rejects(store.add({ ...create(), id: task.id }, undefined, () => undefined), 'a duplicate id is refused');
  t.equal(store.waiting, 2, 'and not counted');
});

t.test('claim: the oldest waiting tasks, up to the limit, under one batch id', async (t) => {
  const { store } = freshStore(t);
  const ids = await addAll(store, [create(), create(), create(), create()]);
  t.equal(store.claim('batch-1', 3), 3);
  t.equal(store.waiting, 1);
  const batch = store.batch('batch-1');
  t.same(batch.map((row) => row.task.id), ids.slice(0, 3), 'oldest first');
  t.same(store.batchIds('batch-1'), ids.slice(0, 3));
  for (const { task, params } of batch) {
    t.match(task, { status: 'running', attempts: 1 });
    t.ok(isIso(task.started_at), 'started_at set');
    t.same(params, createParams);
  }
  t.equal(store.claim('batch-2', 3), 1, 'the rest');
  t.equal(store.claim('batch-3', 3), 0, 'nothing waits');
  t.same([...store.runningBatches().keys()].sort(), ['batch-1', 'batch-2']);
});

t.test('claim: two operations on one IP never share a batch or run at once', async (t) => {
  const { store } = freshStore(t);
  const [a1, a2, b1, c1, a3] = await addAll(store, [remove('10.0.0.1'), remove('10.0.0.1'), remove('10.0.0.2'), create(), remove('10.0.0.1')]);
  t.equal(store.claim('first', 10), 3);
  t.same(store.batchIds('first'), [a1, b1, c1], 'one delete per IP, creates alongside');
  t.equal(store.claim('second', 10), 0, 'the other deletes of 10.0.0.1 wait while one runs');
  store.finish(a1!, { status: 'succeeded', instance_state: 'terminated' });
  t.equal(store.claim('third', 10), 1);
  t.same(store.batchIds('third'), [a2], 'then the next one, alone');
  store.finish(a2!, { status: 'failed', instance_state: 'not_found' });
  t.equal(store.claim('fourth', 10), 1);
  t.same(store.batchIds('fourth'), [a3]);
});

t.test('progress and runner only while running; finish once, and it clears the runner', async (t) => {
  const { store } = freshStore(t);
  const [id, other] = await addAll(store, [create(), create()]);
  store.setProgress([id!], { step: 1, of: 4, name: 'queued step' });
  t.equal(store.get(id!)!.progress, null, 'a queued task has no progress');
  store.claim('b', 2);
  store.setProgress([id!], { step: 2, of: 4, name: 'launch instance' });
  t.same(store.get(id!)!.progress, { step: 2, of: 4, name: 'launch instance' });
  store.setRunner([id!, other!], 4242, '123456');
  t.match(store.get(other!), { runner_pid: 4242, runner_start: '123456' });

  t.equal(store.finish(id!, { status: 'succeeded', ip: '54.1.2.3', instance_id: 'i-0123', instance_state: 'running' }), true);
  const done = store.get(id!)!;
  t.match(done, { status: 'succeeded', ip: '54.1.2.3', instance_id: 'i-0123', instance_state: 'running', error: null, runner_pid: null });
  t.ok(isIso(done.finished_at));
  t.equal(store.finish(id!, { status: 'failed', error: 'late' }), false, 'a second finish is refused');
  t.same(store.get(id!), done, 'and changes nothing');
  store.setProgress([id!], { step: 3, of: 4, name: 'after the end' });
  t.same(store.get(id!)!.progress, { step: 2, of: 4, name: 'launch instance' }, 'a finished task keeps its last progress');
  t.equal(store.get(other!)!.runner_pid, 4242, 'the other task keeps its runner');
});

t.test('a delete that ends without an ip keeps the one it targeted; logs are stored capped', async (t) => {
  const { store } = freshStore(t);
  const [del] = await addAll(store, [remove('54.9.9.9')]);
  store.claim('b', 1);
  store.finish(del!, { status: 'failed', instance_state: 'not_found', error: 'no managed instance has public IP 54.9.9.9' });
  t.match(store.get(del!), { ip: '54.9.9.9', instance_state: 'not_found' });
  store.setLog([del!], { head: 'HEAD', tail: 'TAIL', size: 100 });
  t.same(store.getLog(del!), { head: 'HEAD', tail: 'TAIL', size: 100 });
});

t.test('requeue: back to waiting, with or without the attempt refunded; never a finished task', async (t) => {
  const { store } = freshStore(t);
  const [id] = await addAll(store, [create()]);
  store.claim('b1', 1);
  const firstStart = store.get(id!)!.started_at;
  store.setRunner([id!], 99, 'x');
  store.requeue([id!], false);
  t.match(store.get(id!), { status: 'queued', attempts: 1, runner_pid: null, runner_start: null, progress: null });
  t.equal(store.waiting, 1, 'waiting again');
  store.claim('b2', 1);
  t.match(store.get(id!), { attempts: 2, started_at: firstStart }, 'started_at is the first start');
  store.requeue([id!], true);
  t.equal(store.get(id!)!.attempts, 1, 'with refund the attempt is given back');
  store.requeue([id!], true);
  t.equal(store.get(id!)!.attempts, 1, 'requeue of a queued task changes nothing');
  t.equal(store.waiting, 1);
  store.claim('b3', 1);
  store.finish(id!, { status: 'succeeded' });
  store.requeue([id!], false);
  t.equal(store.get(id!)!.status, 'succeeded', 'a finished task is never requeued');
  t.equal(store.waiting, 0);
});

t.test('cancel: a queued task is canceled at once; a running one has its cancel recorded', async (t) => {
  const { store } = freshStore(t);
  const [queued, running] = await addAll(store, [create(), create()]);
  store.claim('b', 1); // takes `queued`, the oldest
  t.equal(store.cancelQueued(running!), true, 'the waiting one');
  t.match(store.get(running!), { status: 'canceled', error: 'canceled by request', started_at: null });
  t.equal(store.waiting, 0);
  t.equal(store.cancelQueued(queued!), false, 'not the running one');
  t.equal(store.isCancelRequested(queued!), false);
  t.equal(store.requestCancel(queued!), true);
  t.equal(store.isCancelRequested(queued!), true, 'recorded in its row, where it survives a crash');
  t.equal(store.requestCancel(running!), false, 'a canceled task is not running');
  t.equal(store.claim('again', 5), 0, 'a canceled task is never claimed');
});

t.test('unfinished(): queued and running tasks, oldest first', async (t) => {
  const { store } = freshStore(t);
  t.same(store.unfinished(), []);
  const ids = await addAll(store, [create(), create(), create(), create()]);
  store.claim('b', 2);
  store.finish(ids[0]!, { status: 'failed', error: 'x' });
  store.cancelQueued(ids[3]!);
  t.same(
    store.unfinished().map((task) => [task.id, task.status]),
    [
      [ids[1], 'running'],
      [ids[2], 'queued'],
    ],
  );
});

t.test('idempotency keys', async (t) => {
  t.test('add with a key → findKey; expired keys are not found, purged, and taken over', async (t) => {
    const { db, store } = freshStore(t);
    const first = create();
    await store.add(first, { owner: 'default', key: 'key-1', request_hash: 'hash-1', ttlSeconds: 3600 }, () => undefined);
    t.same(store.findKey('default', 'key-1'), { key: 'key-1', request_hash: 'hash-1', task_id: first.id });
    t.equal(store.findKey('default', 'key-2'), undefined);

    await store.add(create(), { owner: 'default', key: 'old', request_hash: 'h', ttlSeconds: -1 }, () => undefined);
    t.equal(store.findKey('default', 'old'), undefined, 'expired: not found');
    const keys = () => (db.prepare('SELECT key FROM idempotency_keys ORDER BY key').all() as { key: string }[]).map((r) => r.key);
    t.same(keys(), ['key-1', 'old'], 'still stored until purged');
    t.equal(store.purgeExpiredKeys(), 1);
    t.same(keys(), ['key-1']);

    const later = create();
    await store.add(create(), { owner: 'default', key: 'reused', request_hash: 'h1', ttlSeconds: -1 }, () => undefined);
    await store.add(later, { owner: 'default', key: 'reused', request_hash: 'h2', ttlSeconds: 3600 }, () => undefined);
    t.same(store.findKey('default', 'reused'), { key: 'reused', request_hash: 'h2', task_id: later.id }, 'a new task takes over an expired key');
  });

  t.test('keys are per owner: the same key from two owners names two tasks, and neither finds the other', async (t) => {
    const { store } = freshStore(t);
    const alices = create();
    const bobs = create();
    await store.add(alices, { owner: 'alice', key: 'deploy-1', request_hash: 'h', ttlSeconds: 3600 }, () => undefined);
    t.equal(store.findKey('bob', 'deploy-1'), undefined, "bob does not find alice's key");
    await store.add(bobs, { owner: 'bob', key: 'deploy-1', request_hash: 'h', ttlSeconds: 3600 }, () => undefined);
    t.equal(store.findKey('alice', 'deploy-1')?.task_id, alices.id);
    t.equal(store.findKey('bob', 'deploy-1')?.task_id, bobs.id);
  });

  t.test('task and key are written in one transaction', async (t) => {
    const { store } = freshStore(t);
    const task = create();
    await store.add(task, undefined, () => undefined);
    await t.rejects(store.add({ ...create(), id: task.id }, { owner: 'default', key: 'orphan', request_hash: 'h', ttlSeconds: 3600 }, () => undefined));
    t.equal(store.findKey('default', 'orphan'), undefined, 'a failed insert leaves no key behind');
  });
});
