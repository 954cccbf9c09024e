// Scheduling: better-queue over the tasks table through its store interface
// (TaskQueueStore). A real better-queue and a real SQLite file; the batch
// runner is the test's own, to see which tasks each batch got.
import path from 'node:path';
import t from 'tap';
import Database from 'better-sqlite3';
import { openDatabase, type Db } from '../src/tasks/db.js';
import { TaskEvents } from '../src/tasks/events.js';
import { GroupCommit } from '../src/tasks/group-commit.js';
import { CLAIM_RETRY_MS, Scheduler, TaskQueueStore } from '../src/tasks/scheduler.js';
import { SqliteTaskStore } from '../src/tasks/sqlite-store.js';
import type { NewTask, TaskStore } from '../src/tasks/store.js';
import { eventually, sleep, tempDir } from './helpers/harness.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

function fresh(t: Teardown): { db: Db; store: TaskStore; file: string } {
  const file = path.join(tempDir(), 'queue.db');
  const db = openDatabase(file);
  t.teardown(() => {
    if (db.open) db.close();
  });
  return { db, file, store: new SqliteTaskStore(db, new GroupCommit(db), new TaskEvents(db), () => undefined) };
}

const batchIds = async (store: TaskStore, batch: string) => (await store.batch(batch)).map((row) => row.task.id);

let counter = 0;
const create = (): NewTask => ({ id: `00000000-0000-7000-8000-${String(++counter).padStart(12, '0')}`, action: 'create', params: { username: 'u', password_hash: '$6$s$h' } });

type Callback<T> = (error: unknown, value: T) => void;
const call = <T>(method: (cb: Callback<T>) => void) =>
  new Promise<T>((resolve, reject) => method((error, value) => (error ? reject(error) : resolve(value))));

/**
 * A scheduler whose batches record their tasks and end when `release` is
 * called; each batch holds one of `concurrency` slots while it runs, as a
 * batch holds the playbook pool's.
 */
function scheduler(
  t: Teardown,
  store: TaskStore,
  options: Partial<{ concurrency: number; batchSize: number; paused: boolean; onError: (error: unknown) => void }> = {},
) {
  const batches: string[][] = [];
  const releases: (() => void)[] = [];
  const s = new Scheduler(
    store,
    { batchSize: options.batchSize ?? 25, batchDelayMs: 100, paused: options.paused ?? false },
    () => releases.length < (options.concurrency ?? 2),
    (batchId) => {
      // Read at once: the batch's rows are running until the release below.
      const batch: string[] = [];
      batches.push(batch);
      void batchIds(store, batchId).then((ids) => batch.push(...ids));
      return new Promise<void>((resolve) =>
        releases.push(() => {
          // Ended as a run ends them; a test may close the database meanwhile.
          void batchIds(store, batchId).then((ids) => Promise.all(ids.map((id) => store.finish(id, { status: 'succeeded' })))).finally(resolve).catch(() => undefined);
        }),
      );
    },
    options.onError ??
      ((error) => {
        throw error;
      }),
  );
  t.teardown(() => s.stop());
  return { s, batches, releaseAll: () => releases.splice(0).forEach((release) => release()) };
}

/** Commits `n` tasks one after the other and tells the scheduler of each, as intake does. */
async function queueSome(store: TaskStore, s: Scheduler, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const task = await store.add(create());
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
  for (let i = 0; i < 3; i++) ids.push((await store.add(create())).id);
  t.equal(await call<number>((cb) => adapter.connect(cb)), 3);

  // putTask and getTask have nothing to do: the committed row is the queue entry.
  await call<void>((cb) => adapter.putTask(ids[0]!, { id: ids[0]! }, 0, cb));
  t.equal(await call<unknown>((cb) => adapter.getTask(ids[0]!, cb)), undefined, 'never an older version to merge');
  t.equal((db.prepare('SELECT count(*) AS n FROM tasks').get() as { n: number }).n, 3, 'putTask wrote no second row');

  const lock = await call<string>((cb) => adapter.takeFirstN(1_000_000, cb));
  const batch = await call<Record<string, { id: string; batch?: string }>>((cb) => adapter.getLock(lock, cb));
  t.same(Object.keys(batch), ids.slice(0, 2), 'a take claims up to EC2_API_BATCH_SIZE, oldest first');
  t.same(batch[ids[0]!], { id: ids[0], batch: lock }, 'each item names its batch');
  t.equal((await store.get(ids[0]!))?.status, 'running', 'the claim is the task row itself moving to running');

  const rest = await call<string>((cb) => adapter.takeFirstN(5, cb));
  t.same(await call((cb) => adapter.getRunningTasks(cb)), {}, 'nothing to resume, though a batch is running: a batch is its claimer\'s');
  t.same(Object.keys(await call<Record<string, unknown>>((cb) => adapter.getLock(rest, cb))), [ids[2]], 'the next take, the rest');
  const none = await call<string>((cb) => adapter.takeFirstN(5, cb));
  t.same(await call<Record<string, unknown>>((cb) => adapter.getLock(none, cb)), {}, 'then an empty batch');
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
  await sleep(400);
  t.equal(batches.length, 1, 'no second batch while the only slot is taken');
  t.same((await Promise.all(ids.slice(4).map((id) => store.get(id)))).map((task) => task!.status), ['queued', 'queued'], 'and nothing claimed ahead of a free slot: the rest still waits');
  releaseAll();
  await eventually(() => batches.length === 2, 5_000, 'the second batch');
  t.same(batches[1], ids.slice(4));
  releaseAll();
});

t.test('tasks waiting at start run without being pushed; paused, nothing runs', async (t) => {
  const { store } = fresh(t);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await store.add(create())).id);
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

t.test('a batch claimed elsewhere (another node on a shared database) is never run by a scheduler that starts beside it', async (t) => {
  const { store } = fresh(t);
  const theirs: string[] = [];
  for (let i = 0; i < 2; i++) theirs.push((await store.add(create())).id);
  t.equal(await store.claim('another-nodes-batch', 25), 2, 'claimed by someone else: running, under their batch');
  const mine = (await store.add(create())).id;
  const { s, batches, releaseAll } = scheduler(t, store);
  s.start();
  await eventually(() => batches.length === 1 && batches[0]!.length > 0, 5_000, 'the batch of what waits');
  await sleep(400);
  t.same(batches, [[mine]], 'it ran what waited, and only that: the other batch is its claimer\'s to run');
  releaseAll();
});

t.test('a canceled task is never claimed', async (t) => {
  const { store } = fresh(t);
  const { s, batches, releaseAll } = scheduler(t, store);
  s.start();
  const a = (await store.add(create())).id;
  const b = (await store.add(create())).id;
  t.ok(await store.cancelQueued(a));
  s.queued(a);
  s.queued(b);
  await eventually(() => batches.length === 1, 5_000, 'the batch');
  t.same(batches[0], [b]);
  releaseAll();
});

t.test('a claim that fails (another connection holds the write lock) is tried again on a timer, with no new push', async (t) => {
  const { store, file } = fresh(t);
  const other = new Database(file);
  t.teardown(() => other.close());
  const errors: unknown[] = [];
  const { s, batches, releaseAll } = scheduler(t, store, {
    onError: (error) => {
      errors.push(error);
      // The operator's shell lets go, after the claim failed; nothing else happens: no request, no push.
      if (other.inTransaction) other.exec('ROLLBACK');
    },
  });
  s.start();
  const id = (await store.add(create())).id;
  other.exec('BEGIN IMMEDIATE');
  s.queued(id);
  await eventually(() => errors.length > 0, 20_000, 'the claim to fail');
  t.match(errors[0], { code: 'SQLITE_BUSY' }, 'the claim failed: the database was locked');
  t.equal((await store.get(id))!.status, 'queued', 'the task still waits');
  await eventually(() => batches.length === 1, 20_000 + CLAIM_RETRY_MS, 'the batch, once the lock is gone');
  t.same(batches[0], [id], 'the task ran without anything new arriving');
  releaseAll();
});
