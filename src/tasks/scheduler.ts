// Scheduling: better-queue is the one scheduler of the tasks table. It
// decides when a batch starts (the debounce below); the `tasks` table is its
// store, so the rows the service commits are the queue and a claim is one
// UPDATE of them. better-queue is used only through its documented options
// and store interface (docs/scheduler.md says why each method stays and
// what each option does, from lib/queue.js of better-queue 3.8).
//
// - One count of waiting work: the store's `waiting` (committed `queued`
//   rows). better-queue also counts pushes until their batch ends (it cannot
//   be told not to); that count only tells it that something may be
//   waiting, and nothing in the service reads it.
// - One concurrency limit: EC2_API_CONCURRENCY, the playbook pool's
//   (src/ansible/pool.ts). better-queue's `concurrent` is left unbounded;
//   its `precondition` lets a claim start only when the pool has a free
//   slot and no other claim is between its UPDATE and its batch's first
//   run, so claimed tasks never wait `running` for a slot.
// - One batch size: EC2_API_BATCH_SIZE, applied by the claim.
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

/**
 * better-queue's `batchSize`. Not EC2_API_BATCH_SIZE: better-queue starts a
 * batch at once, skipping the debounce, whenever its count (which includes
 * the tasks of running batches) reaches batchSize, so a task arriving while
 * a full batch runs would start a batch of one. Set above any count, a
 * batch always starts by the debounce and gathers what waits; the claim
 * applies EC2_API_BATCH_SIZE.
 */
const NEVER_BY_COUNT = Number.MAX_SAFE_INTEGER;

/**
 * A batch starts once no task has arrived for this long (or at the latest
 * EC2_API_BATCH_DELAY_MS after the first). The requests of a burst reach the
 * queue a few ms apart (each waits for its password hash and its commit),
 * and under load gaps of 10-30 ms are common: a shorter quiet time cut a
 * burst of 20 into three runs, the third waiting seconds for a free slot
 * (bench: 9.5 s instead of 4 s). A lone task waits this long more: nothing
 * beside the seconds a playbook run takes.
 */
export const QUIET_MS = 50;

/** How soon a claim that failed (SQLITE_BUSY while another connection holds the write lock, SQLITE_FULL) is tried again. */
export const CLAIM_RETRY_MS = 1_000;

/** How often a claim held back by a full pool looks again (a batch's end also wakes it at once). */
const SLOT_POLL_MS = 100;

/** What the scheduler learns of claims: one starts, one ends without a batch to run, one fails. */
export interface ClaimWatcher {
  started(): void;
  empty(): void;
  failed(error: unknown): void;
}

const unwatched: ClaimWatcher = { started() {}, empty() {}, failed() {} };

/**
 * better-queue's store interface over the tasks table: only the methods
 * lib/queue.js calls (takeLastN only with `filo`, deleteTask only from
 * queue.cancel(), close only when present: none is used, none is here).
 */
export class TaskQueueStore implements Pick<BetterQueue.Store<QueueItem>, 'connect' | 'putTask' | 'takeFirstN' | 'getLock' | 'releaseLock'> {
  constructor(
    private readonly store: TaskStore,
    private readonly batchSize: number,
    private readonly claims: ClaimWatcher = unwatched,
  ) {}

  /** At start: how much waits (better-queue starts counting from it). */
  connect(cb: Callback<number>): void {
    defer(cb, () => this.store.waiting());
  }

  /** Checked (it must exist) and called at each push: a task is pushed once, after its commit, so there is never an older version to merge. */
  getTask(_taskId: string, cb: Callback<QueueItem | undefined>): void {
    defer(cb, () => undefined);
  }

  /** Checked and called at each push: the committed row is the queue entry already. */
  putTask(_taskId: string, _task: QueueItem, _priority: number, cb: Callback): void {
    defer(cb, () => undefined);
  }

  /** The claim: up to EC2_API_BATCH_SIZE waiting tasks (better-queue's `n` is NEVER_BY_COUNT); the batch id is the lock. */
  takeFirstN(_n: number, cb: Callback<string>): void {
    const batch = uuidv4();
    this.claims.started();
    this.store.claim(batch, this.batchSize).then(
      () => cb(null, batch),
      (error: unknown) => {
        this.claims.failed(error);
        cb(error, '');
      },
    );
  }

  /** The claimed batch, read back. */
  getLock(lockId: string, cb: Callback<Record<string, QueueItem>>): void {
    defer(cb, async () => {
      let items: Record<string, QueueItem>;
      try {
        items = Object.fromEntries((await this.store.batch(lockId)).map(({ task }) => [task.id, { id: task.id, batch: lockId }]));
      } catch (error) {
        this.claims.failed(error);
        throw error;
      }
      // An empty batch (what waited was canceled, or is a delete of an IP a running delete holds) never starts.
      if (!Object.keys(items).length) this.claims.empty();
      return items;
    });
  }

  /**
   * Called once, after `connect`: the batches better-queue is to resume. None: a batch is run only by
   * the process that claimed it. On SQLite, recovery has requeued every interrupted task before the
   * scheduler starts; on PostgreSQL, the `running` rows are other nodes' live batches (a dead node's
   * come back through its lapsed lease), and running them here would launch beside them.
   */
  getRunningTasks(cb: Callback<Record<string, Record<string, QueueItem>>>): void {
    defer(cb, () => ({}));
  }

  /** Called when a batch ends: its tasks have ended or gone back to `queued`; the batch id stays as a record of the run they shared. */
  releaseLock(_lockId: string, cb: Callback): void {
    defer(cb, () => undefined);
  }
}

/** better-queue expects its callbacks on a later tick (the store's reads may have settled already, on SQLite). */
function defer<T>(cb: Callback<T>, work: () => T | Promise<T>): void {
  Promise.resolve()
    .then(work)
    .then(
      (value) => setImmediate(() => cb(null, value)),
      (error: unknown) => setImmediate(() => cb(error, undefined as T)),
    );
}

export interface SchedulerOptions {
  batchSize: number;
  batchDelayMs: number;
  /** EC2_API_PAUSED: tasks are accepted and stored, none is started. */
  paused: boolean;
}

export class Scheduler {
  private queue: BetterQueue<QueueItem> | null = null;
  private taking = false;
  /** A claim is between its UPDATE and its batch's first run: the next one waits for it (see precondition). */
  private claiming = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: TaskStore,
    private readonly options: SchedulerOptions,
    /** Whether a playbook could start now (the pool has a free slot): the one concurrency limit. */
    private readonly hasFreeSlot: () => boolean,
    /** Runs a claimed batch to its end; starts its first playbook runs before it returns. Never rejects. */
    private readonly runBatch: (batchId: string) => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  start(): void {
    const store = new TaskQueueStore(this.store, this.options.batchSize, {
      started: () => (this.claiming = true),
      empty: () => (this.claiming = false),
      failed: (error) => this.claimFailed(error),
    });
    this.queue = new BetterQueue<QueueItem>(
      (items: QueueItem[], cb: () => void) => {
        const batch = items[0]?.batch;
        this.claiming = false;
        if (!batch) return cb();
        void this.runBatch(batch).finally(cb);
      },
      {
        // The typings want every optional method of the interface; lib/queue.js calls only those TaskQueueStore has.
        store: store as unknown as BetterQueue.Store<QueueItem>,
        concurrent: Infinity,
        precondition: (cb: Callback<boolean>) => cb(null, !this.claiming && this.hasFreeSlot()),
        preconditionRetryTimeout: SLOT_POLL_MS,
        batchSize: NEVER_BY_COUNT,
        batchDelayTimeout: QUIET_MS,
        batchDelay: this.options.batchDelayMs,
        // autoResume resumes the batches getRunningTasks reports (none, see there), then starts taking what waits.
        autoResume: !this.options.paused,
      },
    );
    this.queue.on('error', this.onError);
    if (this.options.paused) this.queue.pause();
    this.taking = !this.options.paused;
  }

  /** better-queue drops a claim that fails and tries again only at its next event: here, that event is a timer. */
  private claimFailed(error: unknown): void {
    this.claiming = false;
    this.onError(error);
    if (this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.taking) this.queue?.resume();
    }, CLAIM_RETRY_MS);
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
    clearTimeout(this.retry);
    const queue = this.queue;
    this.queue = null;
    if (queue) await new Promise<void>((resolve) => queue.destroy(() => resolve()));
  }
}
