// The task service: accepts tasks (durably, before anyone is told "queued"),
// schedules them on better-queue over the SQLite store, recovers after a
// crash, and lets callers wait for a task to end. See docs/task-lifecycle.md.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import BetterQueue from 'better-queue';
import { v7 as uuidv7 } from 'uuid';
import { isSameProcessAlive, killGroupAndWait } from '../ansible/process.js';
import { verifySha512Crypt } from '../http/password.js';
import type { Db } from './db.js';
import { TaskEvents, type TaskEvent } from './events.js';
import { Executor, type ExecutorOptions, type RunReport } from './executor.js';
import { GroupCommit } from './group-commit.js';
import { SqliteQueueStore, type QueuePayload } from './queue-store.js';
import { TaskStore } from './store.js';
import { TERMINAL, taskView, type CreateParams, type Task, type TaskFilter } from './types.js';

/** Event that releases every waiter when the service stops. */
const SHUTDOWN = Symbol('shutdown');

export interface ServiceOptions extends ExecutorOptions {
  concurrency: number;
  batchSize: number;
  batchDelayMs: number;
  maxQueued: number;
  maxAttempts: number;
  idempotencyTtl: number;
  paused: boolean;
}

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Why a submission was refused; the routes map `kind` to a status code. */
export class SubmitError extends Error {
  constructor(
    readonly kind: 'unavailable' | 'queue_full' | 'key_conflict' | 'not_found' | 'finished',
    message: string,
  ) {
    super(message);
  }
}

export interface Submitted {
  task: Task;
  /** True when an Idempotency-Key matched an earlier request: no new task. */
  replayed: boolean;
}

export interface IdempotencyKey {
  key: string;
}

export class TaskService {
  readonly store: TaskStore;
  readonly taskEvents: TaskEvents;
  /** 'run' (RunReport) after every playbook run: for metrics and logs. */
  readonly runs = new EventEmitter<{ run: [RunReport] }>();
  private readonly queueStore: SqliteQueueStore;
  private readonly executor: Executor;
  private readonly events = new EventEmitter();
  private queue: BetterQueue<QueuePayload> | null = null;
  private queued = 0;
  private activeBatches = 0;
  private accepting = false;
  private purgeTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private readonly commits: GroupCommit;
  /** Idempotency keys whose first request is still being committed. */
  private readonly pendingKeys = new Map<string, Promise<{ submitted: Submitted; requestHash: string }>>();

  constructor(
    private readonly db: Db,
    private readonly options: ServiceOptions,
    private readonly log: Logger,
  ) {
    this.store = new TaskStore(db);
    this.taskEvents = new TaskEvents(db);
    this.commits = new GroupCommit(db);
    this.queueStore = new SqliteQueueStore(db, this.commits);
    this.executor = new Executor(options, {
      store: this.store,
      events: this.taskEvents,
      log,
      onFinished: (task) => this.events.emit(task.id, task),
      onRequeue: (ids) => this.requeue(ids),
      onRunEnd: (report) => this.runs.emit('run', report),
    });
    // Every sync request waits on one listener; thousands may wait at once.
    this.events.setMaxListeners(0);
  }

  get isAccepting(): boolean {
    return this.accepting;
  }

  get stats() {
    return { queued: this.queued, runningPlaybooks: this.executor.running };
  }

  /** Recovers from whatever the last process left, then starts the queue. */
  async start(): Promise<void> {
    await this.recover();
    this.queued = this.store.countQueued();
    this.store.purgeExpiredKeys();
    this.purgeTimer = setInterval(() => this.store.purgeExpiredKeys(), 3_600_000).unref();

    this.queue = new BetterQueue<QueuePayload>((input: QueuePayload | QueuePayload[], cb: (error?: unknown) => void) => {
      const batch = Array.isArray(input) ? input : [input];
      const ids = batch.map((item) => item.id);
      this.activeBatches++;
      // Back to the largest size, so that a new burst waits for its debounce
      // rather than being taken one task at a time (see precondition).
      (this.queue as unknown as { batchSize: number }).batchSize = this.options.batchSize;
      // better-queue only fills a second worker slot on its next event (its
      // check is `concurrent - running > 1`): look for more work now.
      if (this.accepting && !this.options.paused) setImmediate(() => this.queue?.resume());
      this.runBatch(ids).finally(() => this.activeBatches--).then(
        () => cb(),
        (error: unknown) => {
          // A bug, not a playbook failure: end the tasks rather than leave them "running".
          this.log.error({ err: error, task_ids: ids }, 'batch failed unexpectedly');
          this.failUnfinished(ids, 'internal error while running the task; the service log has the details');
          cb();
        },
      );
    }, {
      store: this.queueStore,
      concurrent: this.options.concurrency,
      batchSize: this.options.batchSize,
      // A batch starts once no new task has arrived for 10 ms (a burst shares
      // one run), or after EC2_API_BATCH_DELAY_MS at the latest; a lone task
      // waits only the 10 ms.
      batchDelayTimeout: 10,
      batchDelay: this.options.batchDelayMs,
      // Each free worker takes its share of what waits, so a burst is spread
      // over every worker instead of filling one batch and leaving the rest.
      precondition: (cb: (error: unknown, pass: boolean) => void) => {
        const free = Math.max(1, this.options.concurrency - this.activeBatches);
        (this.queue as unknown as { batchSize: number }).batchSize = Math.max(
          1,
          Math.min(this.options.batchSize, Math.ceil(this.queued / free)),
        );
        cb(null, true);
      },
      // With autoResume, better-queue starts taking batches once the store
      // connects (recovery has already unlocked interrupted ones); paused, it waits.
      autoResume: !this.options.paused,
    });
    this.queue.on('error', (error: unknown) => this.log.error({ err: error }, 'queue error'));
    if (this.options.paused) {
      this.queue.pause();
      this.log.warn({ queued: this.queued }, 'EC2_API_PAUSED=1: tasks are accepted and stored, none is started');
    }
    this.accepting = true;
  }

  /** Queues a create. Resolves once the task row is committed. */
  async submitCreate(params: { username: string; password: string; password_hash: string }, key?: IdempotencyKey): Promise<Submitted> {
    const requestHash = hashRequest('create', { username: params.username });
    const sameSecret = (task: Task) => verifySha512Crypt(params.password, (task.params as CreateParams).password_hash);
    if (!key) return this.submit({ action: 'create', params: { username: params.username, password_hash: params.password_hash } });

    // The same key twice in one group commit: the second waits for the first.
    const inFlight = this.pendingKeys.get(key.key);
    if (inFlight) return this.replayOf(await inFlight, requestHash, sameSecret);
    const existing = this.replay(key.key, requestHash, sameSecret);
    if (existing) return existing;
    const submitting = this.submit(
      { action: 'create', params: { username: params.username, password_hash: params.password_hash } },
      { key: key.key, request_hash: requestHash },
    );
    const entry = submitting.then((submitted) => ({ submitted, requestHash }));
    this.pendingKeys.set(key.key, entry);
    try {
      return await submitting;
    } finally {
      this.pendingKeys.delete(key.key);
    }
  }

  /** Queues a delete of the managed instance with this public IP. Resolves once it is committed. */
  submitDelete(ip: string): Promise<Submitted> {
    return this.submit({ action: 'delete', params: { ip }, ip });
  }

  get(id: string): Task | undefined {
    return this.store.get(id);
  }

  list(filter: TaskFilter): Task[] {
    return this.store.list(filter);
  }

  /** The playbook output: live while the task runs, else as stored. */
  getLog(id: string): string | undefined {
    return this.executor.liveLog(id) ?? this.store.getLog(id);
  }

  eventsSince(id: string, afterId: number): TaskEvent[] {
    return this.taskEvents.since(id, afterId);
  }

  /** Every task's events after `afterId`, oldest first, at most `limit`. */
  eventsAfter(afterId: number, limit: number): TaskEvent[] {
    return this.taskEvents.after(afterId, limit);
  }

  /** The id of the newest event: a feed that starts now continues after it. */
  lastEventId(): number {
    return this.taskEvents.lastId();
  }

  /** Live events of one task, or of all (`taskId` null); returns the unsubscribe function. */
  watch(taskId: string | null, listener: (event: TaskEvent) => void): () => void {
    return this.taskEvents.subscribe(taskId, listener);
  }

  /**
   * Cancels a task: a queued one never runs; a running one has its playbook
   * stopped and, for a create, its instance terminated. Resolves with the
   * task once it is canceled, or with its state after `waitMs`.
   */
  async cancel(id: string, waitMs: number): Promise<Task> {
    const task = this.store.get(id);
    if (!task) throw new SubmitError('not_found', 'task not found');
    if (this.store.cancelQueued(id)) {
      this.queued--;
      const canceled = this.store.get(id)!;
      this.recordStatus([canceled]);
      this.log.info({ task_id: id, action: canceled.action }, 'task canceled before it ran');
      this.events.emit(id, canceled);
      return canceled;
    }
    if (this.store.requestCancel(id)) {
      this.log.info({ task_id: id }, 'cancel requested for a running task');
      this.executor.cancel(id);
      return (await this.waitFor(id, waitMs)) ?? this.store.get(id)!;
    }
    const current = this.store.get(id)!;
    throw new SubmitError('finished', `the task has already ${current.status === 'canceled' ? 'been canceled' : current.status}; nothing to cancel`);
  }

  /**
   * The task once it is terminal; its current state when `ms` passes first,
   * or when the service shuts down (the task then runs after the restart).
   */
  async waitFor(id: string, ms: number): Promise<Task | undefined> {
    const current = this.store.get(id);
    if (!current || TERMINAL.has(current.status) || !this.accepting) return current;
    return new Promise((resolve) => {
      const done = (task?: Task) => {
        clearTimeout(timer);
        this.events.off(id, done);
        this.events.off(SHUTDOWN, done);
        resolve(task ?? this.store.get(id));
      };
      const timer = setTimeout(done, ms);
      this.events.on(id, done);
      this.events.on(SHUTDOWN, done);
    });
  }

  /** Throws when a new task would be refused; cheap, so routes call it before costly work. */
  assertCanAccept(): void {
    if (!this.accepting || !this.queue) throw new SubmitError('unavailable', 'the service is shutting down; retry shortly');
    if (this.queued >= this.options.maxQueued) {
      throw new SubmitError('queue_full', `${this.queued} tasks are waiting (EC2_API_MAX_QUEUED); retry later`);
    }
  }

  /**
   * Graceful stop: refuse new tasks, give running playbooks `graceSeconds`,
   * then stop them and put their tasks back in the queue for the next start.
   */
  close(graceSeconds: number): Promise<void> {
    this.closing ??= this.shutdown(graceSeconds);
    return this.closing;
  }

  private async shutdown(graceSeconds: number): Promise<void> {
    this.accepting = false;
    clearInterval(this.purgeTimer);
    this.queue?.pause();
    await this.executor.idle(graceSeconds * 1000);
    const interrupted = await this.executor.stopAll();
    if (interrupted.length) {
      // A stop on purpose is not the task's fault: it does not count as an attempt.
      this.store.requeue(interrupted, true);
      this.queueStore.unlock(interrupted);
      this.log.warn({ tasks: interrupted }, 'stopped running playbooks; their tasks run again at the next start');
    }
    // Sync requests still waiting answer now, with the task's current state.
    this.events.emit(SHUTDOWN);
    const queue = this.queue;
    this.queue = null;
    if (queue) await new Promise<void>((resolve) => queue.destroy(() => resolve()));
  }

  private async submit(task: { action: Task['action']; params: Task['params']; ip?: string }, key?: { key: string; request_hash: string }): Promise<Submitted> {
    this.assertCanAccept();
    // Counted now, not after the commit: concurrent requests must not
    // overshoot EC2_API_MAX_QUEUED while their group commit is pending.
    this.queued++;
    const id = uuidv7();
    let stored: Task;
    try {
      stored = await this.commits.run(() =>
        this.store.insert({ id, action: task.action, params: task.params, ip: task.ip ?? null }, key && { ...key, ttlSeconds: this.options.idempotencyTtl }),
      );
    } catch (error) {
      this.queued--;
      throw error;
    }
    // The row is committed; the queue's own row follows. A crash in between
    // is repaired by recover(), which re-queues the task.
    this.recordStatus([stored]);
    this.queue?.push({ id });
    return { task: stored, replayed: false };
  }

  private replayOf(first: { submitted: Submitted; requestHash: string }, requestHash: string, sameSecret: (task: Task) => boolean): Submitted {
    if (first.requestHash !== requestHash || !sameSecret(first.submitted.task)) {
      throw new SubmitError('key_conflict', 'this Idempotency-Key was used with a different request body; use a new key');
    }
    return { task: first.submitted.task, replayed: true };
  }

  private replay(key: string, requestHash: string, sameSecret: (task: Task) => boolean): Submitted | undefined {
    const record = this.store.findKey(key);
    if (!record) return undefined;
    const task = this.store.get(record.task_id);
    if (!task || record.request_hash !== requestHash || !sameSecret(task)) {
      throw new SubmitError('key_conflict', 'this Idempotency-Key was used with a different request body; use a new key');
    }
    return { task, replayed: true };
  }

  /** A `status` event per task, carrying the task as clients see it. */
  private recordStatus(tasks: Task[]): void {
    this.taskEvents.record(tasks.map((task) => ({ taskId: task.id, type: 'status' as const, data: taskView(task) })));
  }

  private async runBatch(ids: string[]): Promise<void> {
    const tasks: Task[] = [];
    for (const id of ids) {
      // A task may have ended while it waited (canceled), or ended before a
      // crash that left its queue row behind: it does not run again.
      if (this.store.start(id)) {
        this.queued--;
        tasks.push(this.store.get(id)!);
      }
    }
    if (!tasks.length) return;
    this.recordStatus(tasks);
    await this.executor.execute(tasks);
  }

  private failUnfinished(ids: string[], error: string): void {
    for (const id of ids) {
      if (this.store.finish(id, { status: 'failed', error })) {
        const failed = this.store.get(id)!;
        this.recordStatus([failed]);
        this.events.emit(id, failed);
      }
    }
  }

  /** Puts running tasks back in the queue (their run was stopped by another task's cancel). */
  private requeue(ids: string[]): void {
    this.store.requeue(ids, true);
    this.queued += ids.length;
    this.recordStatus(ids.map((id) => this.store.get(id)!));
    // The batch still holds their old rows locked; a new push queues them again.
    for (const id of ids) this.queue?.push({ id });
  }

  /**
   * Start-up repair after any kind of stop (docs/task-lifecycle.md):
   * kill orphaned playbooks, fail tasks interrupted too often, requeue the
   * rest, and make the queue's rows match the task records.
   */
  private async recover(): Promise<void> {
    const unfinished = this.store.unfinished();
    const orphans = new Map<number, string>();
    for (const task of unfinished) {
      if (task.status === 'running' && task.runner_pid && task.runner_start) {
        orphans.set(task.runner_pid, task.runner_start);
      }
    }
    for (const [pid, start] of orphans) {
      if (!isSameProcessAlive(pid, start)) continue;
      this.log.warn({ pid }, 'a playbook from the previous process is still running; killing it before its tasks run again');
      if (!(await killGroupAndWait(pid))) {
        throw new Error(`could not stop the orphaned ansible-playbook (pid ${pid}); stop it by hand, then start again`);
      }
    }

    const interrupted = unfinished.filter((task) => task.status === 'running');
    const abandoned = interrupted.filter((task) => task.attempts >= this.options.maxAttempts);
    for (const task of abandoned) {
      this.failUnfinished(
        [task.id],
        `abandoned after ${task.attempts} interrupted attempts (EC2_API_MAX_ATTEMPTS); the service stopped during each run`,
      );
    }
    this.store.requeue(
      interrupted.filter((task) => !abandoned.includes(task)).map((task) => task.id),
      false,
    );
    if (interrupted.length) {
      this.log.warn({ requeued: interrupted.length - abandoned.length, abandoned: abandoned.length }, 'recovered tasks interrupted by the last stop');
    }

    this.db.transaction(() => {
      this.queueStore.unlockAll();
      const inQueue = this.queueStore.taskIds();
      const live = new Set(this.store.unfinished().map((task) => task.id));
      for (const id of live) if (!inQueue.has(id)) this.queueStore.insertNow(id);
      for (const id of inQueue) if (!live.has(id)) this.queueStore.deleteNow(id);
    })();
  }
}

function hashRequest(action: string, fields: Record<string, string>): string {
  return createHash('sha256').update(JSON.stringify({ action, ...fields })).digest('hex');
}
