// The task engine's one door: what routes may ask of it (queue, read, follow,
// cancel, wait for a task; list instances), and the steps of its start and
// stop, which the app runs in its hooks (src/app.ts). Each part does one
// job: intake.ts admits, scheduler.ts claims batches (better-queue over the
// tasks table), execution.ts runs them, cancel.ts, recovery.ts, waiters.ts,
// listing.ts; store.ts is the durable half, whose every committed state
// change comes back to `changed` below. See docs/task-lifecycle.md.
import { listManagedInstances, type ManagedInstance } from '../ansible/instances.js';
import { EMPTY_OUTPUT, type CappedText } from '../ansible/output.js';
import { PlaybookPool, type RunReport } from '../ansible/pool.js';
import { removeStaleRunFolders } from '../ansible/runner.js';
import type { PasswordHasher } from '../login/hasher.js';
import { Cancellation } from './cancel.js';
import type { Db } from './db.js';
import { TaskEvents, type TaskEvent } from './events.js';
import { Execution, type ExecutionOptions, type Logger } from './execution.js';
import { GroupCommit } from './group-commit.js';
import { Housekeeping } from './housekeeping.js';
import { Intake, type Submitted } from './intake.js';
import { InstanceListing } from './listing.js';
import { TERMINAL, type Task, type TaskFilter } from './model.js';
import { recover } from './recovery.js';
import { Scheduler } from './scheduler.js';
import { SqliteTaskStore } from './sqlite-store.js';
import type { StateChange, TaskStore } from './store.js';
import { Waiters } from './waiters.js';

export type { Logger } from './execution.js';
export type { Submitted } from './intake.js';

export interface EngineOptions extends ExecutionOptions {
  concurrency: number;
  batchSize: number;
  batchDelayMs: number;
  maxQueued: number;
  idempotencyTtl: number;
  /** EC2_API_RETENTION in seconds (0: keep every task). */
  retentionSeconds: number;
  /** The service's private directory for playbook run folders. */
  runsDir: string;
  paused: boolean;
  systemAccounts: ReadonlySet<string>;
}

/** Seconds a listing of the instances may take. */
const LIST_TIMEOUT_SECONDS = 300;

export class TaskService {
  private readonly store: TaskStore;
  private readonly commits: GroupCommit;
  private readonly events: TaskEvents;
  private readonly pool: PlaybookPool;
  private readonly waiters: Waiters;
  private readonly execution: Execution;
  private readonly scheduler: Scheduler;
  private readonly intake: Intake;
  private readonly cancellation: Cancellation;
  private readonly listing: InstanceListing;
  /** Batches being run: the database stays open until they have settled. */
  private readonly batches = new Set<Promise<void>>();
  private readonly housekeeping: Housekeeping;

  constructor(
    db: Db,
    hasher: PasswordHasher,
    private readonly options: EngineOptions,
    private readonly log: Logger,
  ) {
    this.commits = new GroupCommit(db);
    this.events = new TaskEvents(db);
    this.store = new SqliteTaskStore(db, this.commits, this.events, (change) => this.changed(change));
    this.housekeeping = new Housekeeping(db, this.store, options.retentionSeconds, log);
    this.pool = new PlaybookPool(options.concurrency, options.runsDir);
    this.waiters = new Waiters((id) => this.store.get(id));
    this.execution = new Execution(options, { store: this.store, events: this.events, pool: this.pool, log });
    this.scheduler = new Scheduler(
      this.store,
      options,
      () => this.pool.hasFreeSlot,
      (batchId) => this.track(this.execution.runBatch(batchId)),
      (error) => log.error({ err: error }, 'claiming tasks failed; trying again shortly'),
    );
    this.intake = new Intake(this.store, hasher, options);
    this.cancellation = new Cancellation(this.store, this.waiters, this.execution, log, () => this.scheduler.startsTasks);
    this.listing = new InstanceListing(() =>
      listManagedInstances(this.pool, { ...options, timeoutSeconds: Math.min(options.taskTimeout, LIST_TIMEOUT_SECONDS) }),
    );
  }

  /**
   * The one hook of every committed state change (store.ts): the event
   * streams, the scheduler, the waiters, the instance listing and the log
   * learn of it here and nowhere else.
   */
  private changed({ task, event }: StateChange): void {
    this.events.publish([event]);
    if (task.status === 'queued') this.scheduler.queued(task.id);
    if (!TERMINAL.has(task.status)) return;
    this.waiters.ended(task.id);
    // A task that ran may have launched or terminated something: no listing read before is handed out again.
    if (task.started_at) this.listing.changed();
    const line = { task_id: task.id, action: task.action, status: task.status, instance_id: task.instance_id, ip: task.ip };
    if (task.status === 'failed') this.log.warn({ ...line, error: task.error }, 'task failed');
    else this.log.info(line, `task ${task.status}`);
  }

  // --- Lifecycle: the app's hooks call these, in this order. ---

  /** Repairs what the last process left (recovery.ts), then starts taking tasks. */
  async start(): Promise<void> {
    await recover(this.store, this.options.maxAttempts, this.log);
    // The last process's playbooks are gone now (recover killed any left): their run folders hold hashes.
    const stale = removeStaleRunFolders(this.options.runsDir);
    if (stale) this.log.warn({ removed: stale }, 'removed the run folders of playbooks interrupted by the last stop');
    this.housekeeping.start();
    this.scheduler.start();
    this.intake.open();
    if (this.options.paused) {
      this.log.warn({ queued: this.store.waiting }, 'EC2_API_PAUSED=1: tasks are accepted and stored, none is started');
    }
  }

  /** Shutdown, first step: new tasks are refused (503) and no new batch starts. */
  refuseNewTasks(): void {
    this.intake.close();
    this.scheduler.pause();
  }

  /**
   * Shutdown, second step: running playbooks get `graceSeconds` to finish;
   * then they are stopped and their tasks go back to `queued` for the next
   * start. Callers still waiting are answered with the task as it stands.
   */
  async drain(graceSeconds: number): Promise<void> {
    await this.pool.idle(graceSeconds * 1000);
    await this.pool.stopAll();
    await Promise.all(this.batches);
    this.waiters.releaseAll();
  }

  /** Shutdown, last step: the queue lets go of its store. The database is closed by its owner after this. */
  async close(): Promise<void> {
    await this.housekeeping.stop();
    await this.scheduler.stop();
  }

  /**
   * For a process that must exit now (a second signal, or the shutdown bound
   * passed): kills every playbook at once and puts its tasks back in the
   * queue, synchronously, as the end of the grace period would.
   */
  abort(): void {
    this.intake.close();
    this.pool.killAll();
    const running = [...this.store.runningBatches().values()].flat();
    this.store.requeue(running, true).catch((error: unknown) => this.log.error({ err: error }, 'could not requeue the running tasks'));
    this.commits.flush();
  }

  // --- What routes ask. ---

  get isAccepting(): boolean {
    return this.intake.isAccepting;
  }

  get stats(): { queued: number; runningPlaybooks: number } {
    return { queued: this.store.waiting, runningPlaybooks: this.pool.running };
  }

  /** Throws the refusal a new task would get now (shutting down, queue full): cheap, for routes to call first. */
  assertCanAccept(): void {
    this.intake.assertCanAccept();
  }

  createTask(login: { username: string; password: string }, idempotencyKey?: string): Promise<Submitted> {
    return this.intake.create(login, idempotencyKey);
  }

  deleteTask(ip: string): Promise<Submitted> {
    return this.intake.delete(ip);
  }

  get(id: string): Task | undefined {
    return this.store.get(id);
  }

  list(filter: TaskFilter): Task[] {
    return this.store.list(filter);
  }

  /**
   * The playbook output of a task: live while a run that holds it goes on
   * (which may be after the task itself has ended, when its result came
   * early), else as stored; `complete` once nothing more will be added.
   */
  output(id: string): { log: CappedText; complete: boolean } | undefined {
    const task = this.store.get(id);
    if (!task) return undefined;
    const live = this.execution.liveLog(id);
    return { log: live ?? this.store.getLog(id) ?? EMPTY_OUTPUT, complete: !live && TERMINAL.has(task.status) };
  }

  eventsSince(id: string, afterId: number): TaskEvent[] {
    return this.events.since(id, afterId);
  }

  /** Every task's events after `afterId`, oldest first, at most `limit`. */
  eventsAfter(afterId: number, limit: number): TaskEvent[] {
    return this.events.after(afterId, limit);
  }

  /** The id of the newest event: a feed that starts now continues after it. */
  lastEventId(): number {
    return this.events.lastId();
  }

  /** Live events of one task, or of all (`taskId` null); returns the unsubscribe function. */
  watch(taskId: string | null, listener: (event: TaskEvent) => void): () => void {
    return this.events.subscribe(taskId, listener);
  }

  /** The task once it has ended; as it stands when `ms` pass first or the service stops. */
  waitFor(id: string, ms: number): Promise<Task | undefined> {
    return this.waiters.waitFor(id, ms);
  }

  cancel(id: string, waitMs: number): Promise<Task> {
    return this.cancellation.cancel(id, waitMs);
  }

  /** The instances this service manages, read from EC2 (shared by concurrent callers, reused for a few seconds). */
  instances(): Promise<ManagedInstance[]> {
    return this.listing.get();
  }

  /** Every playbook run that ends (task batches, cleanups, listings): for metrics. */
  onRun(listener: (report: RunReport) => void): () => void {
    return this.pool.onRun(listener);
  }

  /** Throws when the database cannot answer a trivial query (readiness). */
  ping(): void {
    this.store.ping();
  }

  /** Task counts by action and status, read at each call (metrics). */
  countByStatus(): { action: string; status: string; count: number }[] {
    return this.store.countByStatus();
  }

  private track(batch: Promise<void>): Promise<void> {
    this.batches.add(batch);
    return batch.finally(() => this.batches.delete(batch));
  }
}
