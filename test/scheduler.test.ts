// Scheduling: better-queue over the tasks table through its store interface
// (TaskQueueStore). A real better-queue and a real SQLite file; the batch
// runner is the test's own, to see which tasks each batch got.
import path from 'node:path';
import t from 'tap';
import { openDatabase, type Db } from '../src/tasks/db.js';
import { GroupCommit } from '../src/tasks/group-commit.js';
import { Scheduler, TaskQueueStore } from '../src/tasks/scheduler.js';
import { TaskStore, type NewTask } from '../src/tasks/store.js';
import { eventually, sleep, tempDir } from './helpers/harness.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

function fresh(t: Teardown): { db: Db; store: TaskStore } {
  const db = openDatabase(path.join(tempDir(), 'queue.db'));
  t.teardown(() => {
    if (db.open) db.close();
  });
  return { db, store: new TaskStore(db, new GroupCommit(db)) };
}

let counter = 0;
const create = (): NewTask => ({ id: `00000000-0000-7000-8000-${String(++counter).padStart(12, '0')}`, action: 'create', params: { username: 'u', password_hash: '$6$s$h' } });

type Callback<T> = (error: unknown, value: T) => void;
const call = <T>(method: (cb: Callback<T>) => void) =>
  new Promise<T>((resolve, reject) => method((error, value) => (error ? reject(error) : resolve(value))));

/** A scheduler whose batches record their tasks and end when `release` is called. */
function scheduler(t: Teardown, store: TaskStore, options: Partial<{ concurrency: number; batchSize: number; paused: boolean }> = {}) {
  const batches: string[][] = [];
  const releases: (() => void)[] = [];
  const s = new Scheduler(
    store,
    { concurrency: options.concurrency ?? 2, batchSize: options.batchSize ?? 25, batchDelayMs: 100, paused: options.paused ?? false },
    (batchId) => {
      batches.push(store.batchIds(batchId));
      return new Promise<void>((resolve) =>
        releases.push(() => {
          for (const id of store.batchIds(batchId)) store.finish(id, { status: 'succeeded' });
          resolve();
        }),
      );
    },
    (error) => {
      throw error;
    },
  );
  t.teardown(() => s.stop());
  return { s, batches, releaseAll: () => releases.splice(0).forEach((release) => release()) };
}

/** Commits `n` tasks one after the other and tells the scheduler of each, as intake does. */
async function queueSome(store: TaskStore, s: Scheduler, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const { task } = await store.add(create(), undefined, () => undefined);
    ids.push(task.id);
    s.queued(task.id);
  }
  return ids;
}

t.test('the store interface works on the tasks table itself', async (t) => {
  const { db, store } = fresh(t);
  const adapter = new TaskQueueStore(store, 2);
  t.equal(await call<number>((cb) => adapter.connect(cb)), 0, 'connect reports what waits: nothing');
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await store.add(create(), undefined, () => undefined)).task.id);
  t.equal(await call<number>((cb) => adapter.connect(cb)), 3);

  // putTask and getTask have nothing to do: the committed row is the queue entry.
  await call<void>((cb) => adapter.putTask(ids[0]!, { id: ids[0]! }, 0, cb));
  t.equal(await call<unknown>((cb) => adapter.getTask(ids[0]!, cb)), undefined, 'never an older version to merge');
  t.equal((db.prepare('SELECT count(*) AS n FROM tasks').get() as { n: number }).n, 3, 'putTask wrote no second row');

  const lock = await call<string>((cb) => adapter.takeFirstN(1_000_000, cb));
  const batch = await call<Record<string, { id: string; batch?: string }>>((cb) => adapter.getLock(lock, cb));
  t.same(Object.keys(batch), ids.slice(0, 2), 'a take claims up to EC2_API_BATCH_SIZE, oldest first');
  t.same(batch[ids[0]!], { id: ids[0], batch: lock }, 'each item names its batch');
  t.equal(store.get(ids[0]!)?.status, 'running', 'the claim is the task row itself moving to running');
  t.same(await call((cb) => adapter.getRunningTasks(cb)), { [lock]: batch }, 'running tasks by batch');

  const empty = await call<string>((cb) => adapter.takeLastN(5, cb));
  t.same(Object.keys(await call<Record<string, unknown>>((cb) => adapter.getLock(empty, cb))), [ids[2]], 'only first-in-first-out');
  db.close();
  await t.rejects(call<string>((cb) => adapter.takeFirstN(5, cb)), 'a database error reaches the callback instead of being thrown');
});

t.test('a burst of committed tasks runs as one batch after the debounce', async (t) => {
  const { store } = fresh(t);
  const { s, batches, releaseAll } = scheduler(t, store);
  s.start();
  const ids = await queueSome(store, s, 6);
  await eventually(() => batches.length === 1, 5_000, 'the batch');
  t.same(batches[0], ids, 'all six in one batch, in order');
  await sleep(300);
  t.equal(batches.length, 1, 'and nothing else ran');
  releaseAll();
});

t.test('EC2_API_BATCH_SIZE caps a batch; the rest runs when a batch ends', async (t) => {
  const { store } = fresh(t);
  const { s, batches, releaseAll } = scheduler(t, store, { batchSize: 4, concurrency: 1 });
  s.start();
  const ids = await queueSome(store, s, 6);
  await eventually(() => batches.length === 1, 5_000, 'the first batch');
  t.same(batches[0], ids.slice(0, 4));
  releaseAll();
  await eventually(() => batches.length === 2, 5_000, 'the second batch');
  t.same(batches[1], ids.slice(4));
  releaseAll();
});

t.test('tasks waiting at start run without being pushed; paused, nothing runs', async (t) => {
  const { store } = fresh(t);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await store.add(create(), undefined, () => undefined)).task.id);
  const paused = scheduler(t, store, { paused: true });
  paused.s.start();
  await sleep(400);
  t.equal(paused.batches.length, 0, 'paused: accepted and stored, none started');
  await paused.s.stop();

  const running = scheduler(t, store);
  running.s.start();
  await eventually(() => running.batches.length === 1, 5_000, 'the batch of what was waiting');
  t.same(running.batches[0], ids);
  running.releaseAll();
});

t.test('a canceled task is never claimed', async (t) => {
  const { store } = fresh(t);
  const { s, batches, releaseAll } = scheduler(t, store);
  s.start();
  const a = (await store.add(create(), undefined, () => undefined)).task.id;
  const b = (await store.add(create(), undefined, () => undefined)).task.id;
  t.ok(store.cancelQueued(a));
  s.queued(a);
  s.queued(b);
  await eventually(() => batches.length === 1, 5_000, 'the batch');
  t.same(batches[0], [b]);
  releaseAll();
});
