import path from 'node:path';
import BetterQueue from 'better-queue';
import t from 'tap';
import { openDatabase, type Db } from '../src/tasks/db.js';
import { SqliteQueueStore, type QueuePayload } from '../src/tasks/queue-store.js';
import { eventually, sleep, tempDir } from './helpers/harness.js';

/** The part of a tap test these helpers need. */
interface Teardown {
  teardown(fn: () => unknown): void;
}

type Callback<T> = (error: unknown, value: T) => void;

/** Calls a callback-style store method and resolves with its value (rejects on error). */
function call<T>(method: (cb: Callback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => method((error, value) => (error ? reject(error) : resolve(value))));
}

/** A store on a fresh database file; the db is closed when the test ends. */
function freshStore(t: Teardown): { db: Db; store: SqliteQueueStore; file: string } {
  const file = path.join(tempDir(), 'queue.db');
  const db = openDatabase(file);
  t.teardown(() => {
    if (db.open) db.close();
  });
  return { db, store: new SqliteQueueStore(db), file };
}

const payload = (id: string): QueuePayload => ({ id });

async function putAll(store: SqliteQueueStore, ids: string[]): Promise<void> {
  for (const id of ids) await call<void>((cb) => store.putTask(id, payload(id), undefined as unknown as number, cb));
}

const rows = (db: Db) =>
  db.prepare('SELECT task_id, lock_id FROM queue_items ORDER BY seq').all() as { task_id: string; lock_id: string | null }[];

const ids = (n: number, prefix = 'task') => Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(2, '0')}`);

t.test('connect reports how many tasks are stored', async (t) => {
  const { store } = freshStore(t);
  t.equal(await call<number>((cb) => store.connect(cb)), 0, 'empty');
  await putAll(store, ids(3));
  t.equal(await call<number>((cb) => store.connect(cb)), 3);
});

t.test('callbacks come on a later tick, and errors come through them', async (t) => {
  const { db, store } = freshStore(t);
  let returned = false;
  const seen = await call<boolean>((cb) => {
    store.connect((error) => cb(error, returned));
    returned = true;
  });
  t.equal(seen, true, 'connect called back after it returned');

  db.close();
  const error = await call<number>((cb) => store.connect(cb)).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(error instanceof Error, 'a database error reaches the callback instead of being thrown');
});

t.test('putTask / getTask round-trip', async (t) => {
  const { db, store } = freshStore(t);
  await call<void>((cb) => store.putTask('a', payload('a'), 0, cb));
  t.same(await call<QueuePayload>((cb) => store.getTask('a', cb)), { id: 'a' });
  t.equal(await call<QueuePayload>((cb) => store.getTask('unknown', cb)), undefined, 'unknown → undefined');

  // better-queue calls putTask again for a task it already holds (a merge): one row, updated in place.
  await call<void>((cb) => store.putTask('b', payload('b'), 0, cb));
  await call<void>((cb) => store.putTask('a', { id: 'a', extra: 1 } as QueuePayload, 0, cb));
  t.same(await call<QueuePayload>((cb) => store.getTask('a', cb)), { id: 'a', extra: 1 });
  t.same(rows(db).map((r) => r.task_id), ['a', 'b'], 'an update keeps the row and its place');
});

t.test('takeFirstN locks the oldest tasks, in FIFO order', async (t) => {
  const { db, store } = freshStore(t);
  await putAll(store, ids(5));
  const lock = await call<string>((cb) => store.takeFirstN(3, cb));
  t.type(lock, 'string');
  t.ok(lock.length > 0, 'a lock id');
  const batch = await call<Record<string, QueuePayload>>((cb) => store.getLock(lock, cb));
  t.same(Object.keys(batch), ['task-01', 'task-02', 'task-03'], 'the first three, in order');
  t.same(batch['task-02'], { id: 'task-02' });

  const second = await call<string>((cb) => store.takeFirstN(3, cb));
  t.not(second, lock, 'every take has its own lock');
  t.same(Object.keys(await call<Record<string, QueuePayload>>((cb) => store.getLock(second, cb))), ['task-04', 'task-05'], 'then the rest');
  t.same(
    rows(db).map((r) => r.lock_id),
    [lock, lock, lock, second, second],
    'every row is locked by its batch',
  );
  t.equal(await call<number>((cb) => store.connect(cb)), 5, 'locked rows are still stored until released');
});

t.test('takeFirstN honours priority before order', async (t) => {
  const { store } = freshStore(t);
  await call<void>((cb) => store.putTask('low', payload('low'), 0, cb));
  await call<void>((cb) => store.putTask('high', payload('high'), 5, cb));
  await call<void>((cb) => store.putTask('low-2', payload('low-2'), 0, cb));
  const lock = await call<string>((cb) => store.takeFirstN(2, cb));
  t.same(Object.keys(await call<Record<string, QueuePayload>>((cb) => store.getLock(lock, cb))).sort(), ['high', 'low']);
});

t.test('takeLastN locks the newest tasks', async (t) => {
  const { store } = freshStore(t);
  await putAll(store, ids(5));
  const lock = await call<string>((cb) => store.takeLastN(2, cb));
  t.same(Object.keys(await call<Record<string, QueuePayload>>((cb) => store.getLock(lock, cb))).sort(), ['task-04', 'task-05']);
});

t.test('takeFirstN on an empty queue gives a lock holding nothing', async (t) => {
  const { store } = freshStore(t);
  const lock = await call<string>((cb) => store.takeFirstN(3, cb));
  t.type(lock, 'string');
  t.same(await call<Record<string, QueuePayload>>((cb) => store.getLock(lock, cb)), {});
  t.same(await call<Record<string, QueuePayload>>((cb) => store.getLock('never-taken', cb)), {}, 'so does an unknown lock');
  t.same(await call<Record<string, Record<string, QueuePayload>>>((cb) => store.getRunningTasks(cb)), {}, 'nothing is running');
});

t.test('getRunningTasks groups locked tasks by lock; releaseLock deletes them', async (t) => {
  const { db, store } = freshStore(t);
  await putAll(store, ids(5));
  const first = await call<string>((cb) => store.takeFirstN(2, cb));
  const second = await call<string>((cb) => store.takeFirstN(2, cb));
  const running = await call<Record<string, Record<string, QueuePayload>>>((cb) => store.getRunningTasks(cb));
  t.same(running, {
    [first]: { 'task-01': { id: 'task-01' }, 'task-02': { id: 'task-02' } },
    [second]: { 'task-03': { id: 'task-03' }, 'task-04': { id: 'task-04' } },
  });

  await call<void>((cb) => store.releaseLock(first, cb));
  t.same(rows(db).map((r) => r.task_id), ['task-03', 'task-04', 'task-05'], 'the released batch is gone');
  t.equal(await call<QueuePayload>((cb) => store.getTask('task-01', cb)), undefined);
  t.same(Object.keys(await call<Record<string, unknown>>((cb) => store.getRunningTasks(cb))), [second]);
  t.equal(await call<number>((cb) => store.connect(cb)), 3);
});

t.test('deleteTask', async (t) => {
  const { db, store } = freshStore(t);
  await putAll(store, ids(3));
  await call<void>((cb) => store.deleteTask('task-02', cb));
  t.same(rows(db).map((r) => r.task_id), ['task-01', 'task-03']);
  await call<void>((cb) => store.deleteTask('not-there', cb));
  t.equal(rows(db).length, 2, 'deleting an unknown task is harmless');
});

t.test('unlockAll puts locked rows back in their original order', async (t) => {
  const { db, store } = freshStore(t);
  await putAll(store, ids(5));
  const lockA = await call<string>((cb) => store.takeFirstN(2, cb));
  await call<string>((cb) => store.takeFirstN(2, cb));
  t.equal(store.unlockAll(), 4, 'four rows unlocked');
  t.same(rows(db), ids(5).map((task_id) => ({ task_id, lock_id: null })), 'no lock left, order kept');
  t.same(await call<Record<string, QueuePayload>>((cb) => store.getLock(lockA, cb)), {}, 'the old lock holds nothing');
  const lock = await call<string>((cb) => store.takeFirstN(3, cb));
  t.same(Object.keys(await call<Record<string, QueuePayload>>((cb) => store.getLock(lock, cb))), ['task-01', 'task-02', 'task-03'], 'the oldest come first again');
  t.equal(store.unlockAll(), 3);
  t.equal(store.unlockAll(), 0, 'nothing left to unlock');
});

t.test('unlock, taskIds, insertNow, deleteNow (used by recovery)', async (t) => {
  const { db, store } = freshStore(t);
  await putAll(store, ids(3));
  const lock = await call<string>((cb) => store.takeFirstN(3, cb));
  store.unlock(['task-02']);
  t.same(Object.keys(await call<Record<string, QueuePayload>>((cb) => store.getLock(lock, cb))), ['task-01', 'task-03'], 'one task unlocked');
  store.insertNow('task-04');
  store.insertNow('task-04');
  store.deleteNow('task-01');
  t.same([...store.taskIds()].sort(), ['task-02', 'task-03', 'task-04']);
  t.same(rows(db).find((r) => r.task_id === 'task-04'), { task_id: 'task-04', lock_id: null }, 'inserted unlocked, once');
});

t.test('state survives closing and reopening the database file', async (t) => {
  const { db, store, file } = freshStore(t);
  await putAll(store, ids(4));
  const lock = await call<string>((cb) => store.takeFirstN(2, cb));
  db.close();

  const reopened = openDatabase(file);
  t.teardown(() => reopened.close());
  const again = new SqliteQueueStore(reopened);
  t.equal(await call<number>((cb) => again.connect(cb)), 4);
  t.same(await call<QueuePayload>((cb) => again.getTask('task-03', cb)), { id: 'task-03' });
  t.same(await call<Record<string, Record<string, QueuePayload>>>((cb) => again.getRunningTasks(cb)), {
    [lock]: { 'task-01': { id: 'task-01' }, 'task-02': { id: 'task-02' } },
  });
  const next = await call<string>((cb) => again.takeFirstN(5, cb));
  t.same(Object.keys(await call<Record<string, QueuePayload>>((cb) => again.getLock(next, cb))), ['task-03', 'task-04'], 'unlocked tasks are still waiting');
});

/** Runs a real better-queue over `store` until `expected` tasks were processed and the table is empty. */
async function runQueue(t: Teardown, store: SqliteQueueStore, db: Db, push: string[], expected: number) {
  const batches: string[][] = [];
  const queue = new BetterQueue<QueuePayload>(
    (input: QueuePayload | QueuePayload[], cb: (error?: unknown) => void) => {
      const batch = Array.isArray(input) ? input : [input];
      batches.push(batch.map((task) => task.id));
      setTimeout(() => cb(), 5);
    },
    { store, batchSize: 3, concurrent: 1 },
  );
  const errors: unknown[] = [];
  queue.on('error', (error: unknown) => errors.push(error));
  t.teardown(() => new Promise<void>((resolve) => queue.destroy(() => resolve())));
  for (const id of push) queue.push(payload(id));
  await eventually(() => batches.flat().length >= expected && rows(db).length === 0, 5_000, 'the queue to process every task');
  await sleep(50); // anything processed twice would show up now
  return { batches, errors };
}

t.test('a real better-queue over the store', async (t) => {
  const { db, store } = freshStore(t);
  const pushed = ids(7);
  const { batches, errors } = await runQueue(t, store, db, pushed, 7);
  t.ok(batches.every((batch) => batch.length >= 1 && batch.length <= 3), `batches of at most 3: ${JSON.stringify(batches)}`);
  t.same(batches.flat(), pushed, 'every task processed exactly once, in FIFO order');
  t.same(rows(db), [], 'queue_items is empty after drain');
  t.same(errors, [], 'no queue errors');
});

t.test('rows left locked by a crash are processed after unlockAll on reopen', async (t) => {
  const { db, store, file } = freshStore(t);
  const pushed = ids(5, 'crash');
  await putAll(store, pushed);
  const lock = await call<string>((cb) => store.takeFirstN(3, cb));
  t.equal(Object.keys(await call<Record<string, QueuePayload>>((cb) => store.getLock(lock, cb))).length, 3, 'a batch was taken');
  db.close(); // the process dies with the lock held: releaseLock never runs

  const reopened = openDatabase(file);
  t.teardown(() => {
    if (reopened.open) reopened.close();
  });
  const again = new SqliteQueueStore(reopened);
  t.equal(rows(reopened).filter((r) => r.lock_id === lock).length, 3, 'the lock survived the crash');
  t.equal(again.unlockAll(), 3);
  const { batches, errors } = await runQueue(t, again, reopened, [], 5);
  t.same(batches.flat(), pushed, 'all five run once, the interrupted batch first');
  t.same(rows(reopened), []);
  t.same(errors, []);
});

t.test('a task pushed again while its batch runs is queued again, as in better-queue-memory', async (t) => {
  const { db, store } = freshStore(t);
  await putAll(store, ['x']);
  const lock = await call<string>((cb) => store.takeFirstN(1, cb));
  t.equal(await call<QueuePayload | undefined>((cb) => store.getTask('x', cb as Callback<QueuePayload>)), undefined, 'a running task is not "in the queue"');
  await putAll(store, ['x']);
  t.same(rows(db).map((r) => r.lock_id === lock), [true, false], 'one running row, one waiting row');
  await call<void>((cb) => store.releaseLock(lock, cb));
  t.same(rows(db), [{ task_id: 'x', lock_id: null }], 'the second push survives the first batch ending');
});
