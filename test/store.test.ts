import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { openDatabase, SCHEMA_VERSION, type Db } from '../src/tasks/db.js';
import { capLog, LOG_LIMIT, TaskStore } from '../src/tasks/store.js';
import type { CreateParams } from '../src/tasks/types.js';
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
  return { db, store: new TaskStore(db) };
}

const createParams: CreateParams = { username: 'suitepad', password_hash: '$6$salt$hash' };
let counter = 0;
const newId = () => `00000000-0000-4000-8000-${String(++counter).padStart(12, '0')}`;

t.test('openDatabase', async (t) => {
  t.test('creates the file and its directories with WAL and synchronous=FULL', async (t) => {
    const { db, file } = freshDb(t);
    t.ok(fs.existsSync(file), 'the file exists, parent directories included');
    t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    t.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL');
    t.equal(db.pragma('foreign_keys', { simple: true }), 1);
    t.equal(db.pragma('busy_timeout', { simple: true }), 2000);
    t.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    t.ok(SCHEMA_VERSION >= 1);
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
    for (const name of ['idempotency_keys', 'queue_items', 'service_owner', 'tasks']) t.ok(tables.includes(name), `table ${name}`);
  });

  t.test('NORMAL sync when asked', async (t) => {
    const db = openDatabase(path.join(tempDir(), 'normal.db'), 'NORMAL');
    t.teardown(() => db.close());
    t.equal(db.pragma('synchronous', { simple: true }), 1, 'NORMAL');
  });

  t.test('reopening is idempotent and keeps the data', async (t) => {
    const { db, file } = freshDb(t);
    new TaskStore(db).insert({ id: 'kept-task', action: 'create', params: createParams });
    db.close();
    for (let i = 0; i < 2; i++) {
      const again = openDatabase(file);
      t.equal(again.pragma('user_version', { simple: true }), SCHEMA_VERSION, `reopen ${i + 1}: same schema version`);
      t.equal(again.pragma('journal_mode', { simple: true }), 'wal');
      t.equal(new TaskStore(again).get('kept-task')?.status, 'queued', `reopen ${i + 1}: the task is still there`);
      again.close();
    }
  });

  t.test('a database from a newer ec2-api is refused', async (t) => {
    const { db, file } = freshDb(t);
    new TaskStore(db).insert({ id: 'future-task', action: 'create', params: createParams });
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    t.throws(
      () => openDatabase(file),
      { message: `the database has schema version ${SCHEMA_VERSION + 1}, newer than this ec2-api (${SCHEMA_VERSION}); run a newer release` },
    );
    // Nothing was changed by the refused open: plain SQLite still sees the row and the version.
    const raw = new Database(file, { readonly: true });
    t.teardown(() => raw.close());
    t.equal(raw.pragma('user_version', { simple: true }), SCHEMA_VERSION + 1);
    t.equal((raw.prepare('SELECT count(*) AS n FROM tasks').get() as { n: number }).n, 1);
  });
});

t.test('insert → get', async (t) => {
  const { store } = freshStore(t);
  const before = Date.now();
  const id = newId();
  const inserted = store.insert({ id, action: 'create', params: createParams });
  const task = store.get(id)!;
  t.same(inserted, task, 'insert returns the stored task');
  t.equal(task.id, id);
  t.equal(task.action, 'create');
  t.equal(task.status, 'queued');
  t.same(task.params, createParams, 'params round-trip as an object');
  t.equal(task.attempts, 0);
  t.ok(isIso(task.created_at), `created_at ${task.created_at} is ISO-8601 UTC`);
  t.ok(Date.parse(task.created_at) >= before - 1 && Date.parse(task.created_at) <= Date.now() + 1, 'created_at is now');
  for (const field of ['ip', 'instance_id', 'instance_state', 'error', 'progress', 'runner_pid', 'runner_start', 'started_at', 'finished_at'] as const) {
    t.equal(task[field], null, `${field} is null until known`);
  }
  t.equal(store.getLog(id), '');

  const del = store.insert({ id: newId(), action: 'delete', params: { ip: '54.1.2.3' }, ip: '54.1.2.3' });
  t.same(del.params, { ip: '54.1.2.3' });
  t.equal(del.ip, '54.1.2.3');

  t.equal(store.get('no-such-task'), undefined, 'an unknown id is undefined');
  t.equal(store.getLog('no-such-task'), undefined);
  t.throws(() => store.insert({ id, action: 'create', params: createParams }), 'a duplicate id is refused');
});

t.test('start() takes only queued tasks and counts attempts', async (t) => {
  const { store } = freshStore(t);
  const id = store.insert({ id: newId(), action: 'create', params: createParams }).id;
  t.equal(store.start(id), true);
  const running = store.get(id)!;
  t.equal(running.status, 'running');
  t.equal(running.attempts, 1);
  t.ok(isIso(running.started_at), 'started_at set');

  t.equal(store.start(id), false, 'a running task cannot be started again');
  t.equal(store.get(id)!.attempts, 1, 'and its attempts do not change');

  store.finish(id, { status: 'succeeded' });
  t.equal(store.start(id), false, 'a finished task cannot be started');
  t.equal(store.get(id)!.status, 'succeeded');
  t.equal(store.get(id)!.attempts, 1);

  t.equal(store.start('no-such-task'), false);
});

t.test('setProgress only while running', async (t) => {
  const { store } = freshStore(t);
  const id = store.insert({ id: newId(), action: 'create', params: createParams }).id;
  store.setProgress([id], { step: 1, of: 4, name: 'queued step' });
  t.equal(store.get(id)!.progress, null, 'a queued task has no progress');

  store.start(id);
  store.setProgress([id], { step: 2, of: 4, name: 'launch instance' });
  t.same(store.get(id)!.progress, { step: 2, of: 4, name: 'launch instance' });

  store.finish(id, { status: 'failed', error: 'boom' });
  store.setProgress([id], { step: 3, of: 4, name: 'after the end' });
  t.same(store.get(id)!.progress, { step: 2, of: 4, name: 'launch instance' }, 'a finished task keeps its last progress');
});

t.test('setRunner records and finish clears the runner', async (t) => {
  const { store } = freshStore(t);
  const a = store.insert({ id: newId(), action: 'create', params: createParams }).id;
  const b = store.insert({ id: newId(), action: 'create', params: createParams }).id;
  store.start(a);
  store.start(b);
  store.setRunner([a, b], 4242, '123456');
  t.equal(store.get(a)!.runner_pid, 4242);
  t.equal(store.get(b)!.runner_start, '123456');
  store.finish(a, { status: 'succeeded' });
  t.equal(store.get(a)!.runner_pid, null);
  t.equal(store.get(a)!.runner_start, null);
  t.equal(store.get(b)!.runner_pid, 4242, 'the other task keeps its runner');
});

t.test('finish() ends a task once', async (t) => {
  const { store } = freshStore(t);
  const id = store.insert({ id: newId(), action: 'create', params: createParams }).id;
  store.start(id);
  t.equal(
    store.finish(id, { status: 'succeeded', ip: '54.1.2.3', instance_id: 'i-0123456789abcdef0', instance_state: 'running' }, 'PLAY RECAP ok=3'),
    true,
  );
  const done = store.get(id)!;
  t.equal(done.status, 'succeeded');
  t.equal(done.ip, '54.1.2.3');
  t.equal(done.instance_id, 'i-0123456789abcdef0');
  t.equal(done.instance_state, 'running');
  t.equal(done.error, null);
  t.ok(isIso(done.finished_at), 'finished_at set');
  t.equal(store.getLog(id), 'PLAY RECAP ok=3');

  t.equal(store.finish(id, { status: 'failed', error: 'late failure' }, 'other log'), false, 'a second finish is refused');
  t.same(store.get(id), done, 'and changes nothing');
  t.equal(store.getLog(id), 'PLAY RECAP ok=3');

  t.equal(store.finish('no-such-task', { status: 'failed' }), false);
});

t.test('finish() of a queued task (cancel) and of a delete keeps the ip', async (t) => {
  const { store } = freshStore(t);
  const queued = store.insert({ id: newId(), action: 'create', params: createParams }).id;
  t.equal(store.finish(queued, { status: 'canceled' }), true, 'a queued task can be canceled');
  t.equal(store.get(queued)!.status, 'canceled');
  t.equal(store.get(queued)!.started_at, null, 'it never started');
  t.equal(store.start(queued), false, 'and never will');

  const del = store.insert({ id: newId(), action: 'delete', params: { ip: '54.9.9.9' }, ip: '54.9.9.9' }).id;
  store.start(del);
  store.finish(del, { status: 'failed', instance_state: 'not_found', error: 'no managed instance has public IP 54.9.9.9' });
  const task = store.get(del)!;
  t.equal(task.ip, '54.9.9.9', 'an outcome without ip keeps the requested ip');
  t.equal(task.instance_state, 'not_found');
  t.equal(task.error, 'no managed instance has public IP 54.9.9.9');
});

t.test('requeue() with and without refund', async (t) => {
  const { store } = freshStore(t);
  const id = store.insert({ id: newId(), action: 'create', params: createParams }).id;
  store.start(id);
  const firstStart = store.get(id)!.started_at;
  store.setRunner([id], 99, 'x');
  store.setProgress([id], { step: 1, of: 2, name: 'a' });

  store.requeue([id], false);
  let task = store.get(id)!;
  t.equal(task.status, 'queued');
  t.equal(task.attempts, 1, 'without refund the interrupted attempt counts');
  t.equal(task.runner_pid, null);
  t.equal(task.runner_start, null);
  t.equal(task.progress, null);

  store.start(id);
  task = store.get(id)!;
  t.equal(task.attempts, 2);
  t.equal(task.started_at, firstStart, 'started_at is the first start');

  store.requeue([id], true);
  task = store.get(id)!;
  t.equal(task.status, 'queued');
  t.equal(task.attempts, 1, 'with refund the attempt is given back');

  store.requeue([id], true);
  t.equal(store.get(id)!.attempts, 1, 'requeue of a queued task changes nothing');

  store.start(id);
  store.finish(id, { status: 'succeeded' });
  store.requeue([id], false);
  t.equal(store.get(id)!.status, 'succeeded', 'a finished task is never requeued');
});

t.test('unfinished() and countQueued()', async (t) => {
  const { store } = freshStore(t);
  t.same(store.unfinished(), []);
  t.equal(store.countQueued(), 0);
  const ids = [newId(), newId(), newId(), newId(), newId()];
  for (const id of ids) store.insert({ id, action: 'create', params: createParams });
  store.start(ids[1]!);
  store.start(ids[2]!);
  store.finish(ids[2]!, { status: 'failed', error: 'x' });
  store.finish(ids[3]!, { status: 'canceled' });
  t.same(
    store.unfinished().map((task) => [task.id, task.status]),
    [
      [ids[0], 'queued'],
      [ids[1], 'running'],
      [ids[4], 'queued'],
    ],
    'queued and running tasks, oldest first',
  );
  t.equal(store.countQueued(), 2);
});

t.test('capLog', async (t) => {
  const small = 'x'.repeat(LOG_LIMIT);
  t.equal(capLog(small), small, 'a log at the limit is kept whole');

  const head = 'HEAD-START';
  const tail = 'TAIL-END';
  const huge = head + 'm'.repeat(LOG_LIMIT * 4) + tail;
  const capped = capLog(huge);
  t.ok(capped.length <= LOG_LIMIT + 100, `capped to about LOG_LIMIT (${capped.length})`);
  t.ok(capped.length >= LOG_LIMIT, 'but not much less');
  t.ok(capped.startsWith(head), 'keeps the head');
  t.ok(capped.endsWith(tail), 'keeps the tail');
  t.match(capped, new RegExp(`… ${huge.length - LOG_LIMIT} characters cut …`), 'says how much was cut');

  const { store } = freshStore(t);
  const id = store.insert({ id: newId(), action: 'create', params: createParams }).id;
  store.start(id);
  store.finish(id, { status: 'failed', error: 'noisy' }, huge);
  const stored = store.getLog(id)!;
  t.equal(stored, capped, 'finish stores the capped log');
});

t.test('idempotency keys', async (t) => {
  t.test('insert with a key → findKey', async (t) => {
    const { store } = freshStore(t);
    const id = newId();
    store.insert({ id, action: 'create', params: createParams }, { key: 'key-1', request_hash: 'hash-1', ttlSeconds: 3600 });
    t.same(store.findKey('key-1'), { key: 'key-1', request_hash: 'hash-1', task_id: id });
    t.equal(store.findKey('key-2'), undefined);
    t.equal(store.purgeExpiredKeys(), 0, 'a live key is not purged');
    t.ok(store.findKey('key-1'));
  });

  t.test('an expired key is not found and is purged', async (t) => {
    const { db, store } = freshStore(t);
    store.insert({ id: newId(), action: 'create', params: createParams }, { key: 'old', request_hash: 'h', ttlSeconds: -1 });
    store.insert({ id: newId(), action: 'create', params: createParams }, { key: 'live', request_hash: 'h', ttlSeconds: 3600 });
    t.equal(store.findKey('old'), undefined, 'expired: not found');
    const keys = () => (db.prepare('SELECT key FROM idempotency_keys ORDER BY key').all() as { key: string }[]).map((r) => r.key);
    t.same(keys(), ['live', 'old'], 'still stored until purged');
    t.equal(store.purgeExpiredKeys(), 1);
    t.same(keys(), ['live'], 'purge removed only the expired key');
    t.equal(store.countQueued(), 2, 'purging keys leaves the tasks alone');
  });

  t.test('a new task takes over an expired key', async (t) => {
    const { store } = freshStore(t);
    const first = newId();
    const second = newId();
    store.insert({ id: first, action: 'create', params: createParams }, { key: 'reused', request_hash: 'h1', ttlSeconds: -1 });
    store.insert({ id: second, action: 'create', params: createParams }, { key: 'reused', request_hash: 'h2', ttlSeconds: 3600 });
    t.same(store.findKey('reused'), { key: 'reused', request_hash: 'h2', task_id: second });
    t.equal(store.get(first)?.status, 'queued', 'the first task is untouched');
  });

  t.test('task and key are written in one transaction', async (t) => {
    const { store } = freshStore(t);
    const id = newId();
    store.insert({ id, action: 'create', params: createParams });
    t.throws(() => store.insert({ id, action: 'create', params: createParams }, { key: 'orphan', request_hash: 'h', ttlSeconds: 3600 }));
    t.equal(store.findKey('orphan'), undefined, 'a failed insert leaves no key behind');
  });
});

t.test('insert returns exactly what a read of the new row returns', async (t) => {
  const { openDatabase } = await import('../src/tasks/db.js');
  const { TaskStore } = await import('../src/tasks/store.js');
  const db = openDatabase(path.join(tempDir(), 'same.db'));
  t.teardown(() => db.close());
  const store = new TaskStore(db);
  for (const task of [
    { id: 'c1', action: 'create' as const, params: { username: 'a', password_hash: '$6$x$y' } },
    { id: 'd1', action: 'delete' as const, params: { ip: '1.2.3.4' }, ip: '1.2.3.4' },
  ]) {
    t.same(store.insert(task), store.get(task.id), task.action);
  }
});
