// Scheduling: better-queue decides when a batch starts (debounce, how many
// at once); the `tasks` table is its store, so the rows the service commits
// are the queue and a claim is one UPDATE of them. better-queue is used only
// through its documented options and store interface.
//
// How the documented options are set, and why:
// - `store`: TaskQueueStore below. A task is pushed once, after its row has
//   committed; `putTask` has nothing left to write and `getTask` never finds
//   an older version to merge. `takeFirstN` claims up to EC2_API_BATCH_SIZE
//   waiting tasks (one delete per IP) and returns the batch id as the lock.
// - `batchSize`: the most one take may ask for. It is set far above
//   EC2_API_BATCH_SIZE (which the store applies) because better-queue counts
//   tasks until their batch ends and starts a batch at once whenever that
//   count reaches batchSize: with batchSize = EC2_API_BATCH_SIZE, every task
//   arriving while a full batch runs would start a batch of one. Above it, a
//   batch always starts by the debounce below, and gathers what waits.
// - `batchDelayTimeout` 10 ms, `batchDelay` EC2_API_BATCH_DELAY_MS: a batch
//   starts once no task has arrived for 10 ms, or at the latest that long
//   after the first one: a burst of requests shares one playbook run.
// - `concurrent`: EC2_API_CONCURRENCY batches at once (the playbook pool
//   enforces the same limit on processes, listings included).
// better-queue starts its last free worker only at its next event (a push
// or a batch's end), not right after the one before: docs/task-lifecycle.md
// says what that costs and why it is left so.
import BetterQueue from 'better-queue';
import { v4 as uuidv4 } from 'uuid';
import type { TaskStore } from './store.js';

/** What better-queue carries for a task: its id, and the batch (lock) that claimed it. */
interface QueueItem {
  id: string;
  batch?: string;
}

// better-queue's typings pass the value positionally even on error.
type Callback<T = void> = (error: any, value: T) => void; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The most one take may ask the store for (see batchSize above). */
const TAKE_LIMIT = 1_000_000;

/** better-queue's store interface over the tasks table. */
export class TaskQueueStore implements BetterQueue.Store<QueueItem> {
  constructor(
    private readonly store: TaskStore,
    private readonly batchSize: number,
  ) {}

  connect(cb: Callback<number>): void {
    defer(cb, () => this.store.waiting);
  }

  getTask(_taskId: string, cb: Callback<QueueItem>): void {
    // Each task is pushed once, after its commit: there is never an older
    // version to merge. better-queue reads `undefined` as "not queued yet".
    defer(cb as Callback<QueueItem | undefined>, () => undefined);
  }

  putTask(_taskId: string, _task: QueueItem, _priority: number, cb: Callback): void {
    defer(cb, () => undefined); // the row is committed already: it is the queue entry
  }

  deleteTask(_taskId: string, cb: Callback): void {
    defer(cb, () => undefined); // a task canceled before it ran is no longer `queued`, so no claim takes it
  }

  takeFirstN(n: number, cb: Callback<string>): void {
    defer(cb, () => {
      const batch = uuidv4();
      this.store.claim(batch, Math.min(n, this.batchSize));
      return batch;
    });
  }

  /** Only first-in-first-out is used; the newest-first take would starve old tasks. */
  takeLastN(n: number, cb: Callback<string>): void {
    this.takeFirstN(n, cb);
  }

  getLock(lockId: string, cb: Callback<Record<string, QueueItem>>): void {
    defer(cb, () => Object.fromEntries(this.store.batchIds(lockId).map((id) => [id, { id, batch: lockId }])));
  }

  getRunningTasks(cb: Callback<Record<string, Record<string, QueueItem>>>): void {
    defer(cb, () => {
      const running: Record<string, Record<string, QueueItem>> = {};
      for (const [batch, ids] of this.store.runningBatches()) {
        running[batch] = Object.fromEntries(ids.map((id) => [id, { id, batch }]));
      }
      return running;
    });
  }

  releaseLock(_lockId: string, cb: Callback): void {
    // The batch's tasks have ended (or gone back to `queued`); their batch id stays as a record of the run they shared.
    defer(cb, () => undefined);
  }

  close(cb: Callback): void {
    defer(cb, () => undefined); // the database belongs to the service, which closes it after the queue
  }
}

/** The store is synchronous; better-queue expects its callbacks on a later tick. */
function defer<T>(cb: Callback<T>, work: () => T): void {
  let value: T;
  try {
    value = work();
  } catch (error) {
    setImmediate(() => cb(error, undefined as T));
    return;
  }
  setImmediate(() => cb(null, value));
}

export interface SchedulerOptions {
  concurrency: number;
  batchSize: number;
  batchDelayMs: number;
  /** EC2_API_PAUSED: tasks are accepted and stored, none is started. */
  paused: boolean;
}

export class Scheduler {
  private queue: BetterQueue<QueueItem> | null = null;
  private taking = false;

  constructor(
    private readonly store: TaskStore,
    private readonly options: SchedulerOptions,
    /** Runs a claimed batch to its end; never rejects. */
    private readonly runBatch: (batchId: string) => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  start(): void {
    this.queue = new BetterQueue<QueueItem>(
      (items: QueueItem[], cb: () => void) => {
        const batch = items[0]?.batch;
        if (!batch) return cb();
        void this.runBatch(batch).finally(cb);
      },
      {
        store: new TaskQueueStore(this.store, this.options.batchSize),
        concurrent: this.options.concurrency,
        batchSize: TAKE_LIMIT,
        batchDelayTimeout: 10,
        batchDelay: this.options.batchDelayMs,
        // Recovery has put every interrupted task back in the queue before this starts.
        autoResume: !this.options.paused,
      },
    );
    this.queue.on('error', this.onError);
    if (this.options.paused) this.queue.pause();
    this.taking = !this.options.paused;
  }

  /** Whether queued tasks are being started: false while EC2_API_PAUSED holds them, and from shutdown on. */
  get startsTasks(): boolean {
    return this.taking;
  }

  /** A task was committed as `queued`, or went back to it. */
  queued(taskId: string): void {
    this.queue?.push({ id: taskId });
  }

  /** No new batch starts; running ones go on. */
  pause(): void {
    this.taking = false;
    this.queue?.pause();
  }

  async stop(): Promise<void> {
    this.taking = false;
    const queue = this.queue;
    this.queue = null;
    if (queue) await new Promise<void>((resolve) => queue.destroy(() => resolve()));
  }
}
