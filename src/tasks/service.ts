// The task engine's one door: what routes may ask of it (queue, read, follow,
// cancel, wait for a task; list instances), and the steps of its start and
// stop, which the app runs in its hooks (src/app.ts). Each part does one
// job: intake.ts admits, scheduler.ts claims batches (better-queue over the
// tasks table), execution.ts runs them, cancel.ts, recovery.ts, waiters.ts,
// listing.ts, expiry.ts (instances that end themselves); store.ts is the
// durable half, whose every committed state change comes back to `changed`
// below. See docs/task-lifecycle.md.
import { listManagedInstances, type ManagedInstance } from '../ansible/instances.js';
import { EMPTY_OUTPUT, type CappedText } from '../ansible/output.js';
import { PlaybookPool, type RunReport } from '../ansible/pool.js';
import { removeStaleRunFolders } from '../ansible/runner.js';
import type { PasswordHasher } from '../login/hasher.js';
import { Cancellation } from './cancel.js';
import type pg from 'pg';
import type { Db } from './db.js';
import { TaskEvents, type EventLog, type TaskEvent } from './events.js';
import { Execution, type ExecutionOptions, type Logger } from './execution.js';
import { Expiry, type Lifetime } from './expiry.js';
import { GroupCommit } from './group-commit.js';
import { Housekeeping } from './housekeeping.js';
import { Intake, type CreateRequest, type Submitted } from './intake.js';
import { LifetimeStore, type Lifetimes } from './lifetimes.js';
import { PgTaskEvents } from './pg-events.js';
import { PgLifetimes } from './pg-lifetimes.js';
import { PgTaskStore } from './pg-store.js';
import { InstanceListing } from './listing.js';
import { canSee, EVERYONE, TERMINAL, type Owner, type Task, type TaskFilter } from './model.js';
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
  defaultTtl: number | null;
  maxInstances: number | null;
}

/**
 * Where the tasks are: one process's SQLite file, or a PostgreSQL database
 * that several nodes share (docs/multi-node.md).
 */
export type Storage = { kind: 'sqlite'; db: Db } | { kind: 'postgres'; pool: pg.Pool; nodeId: string; leaseSeconds: number };

/** A managed instance as a caller sees it: with its create task's owner and expiry (null when no task of ours is known). */
export type OwnedInstance = ManagedInstance & { created_by: string | null; expires_at: string | null };

/** Seconds a listing of the instances may take. */
const LIST_TIMEOUT_SECONDS = 300;

export class TaskService {
  private readonly store: TaskStore;
  /** SQLite's group commit (null on PostgreSQL). */
  private readonly commits: GroupCommit | null;
  private readonly events: EventLog;
  /** The PostgreSQL store and events, whose leases and feed run while the service does. */
  private readonly shared: { store: PgTaskStore; events: PgTaskEvents; leaseSeconds: number } | null = null;
  private leaseTimer: NodeJS.Timeout | undefined;
  private readonly pool: PlaybookPool;
  private readonly waiters: Waiters;
  private readonly execution: Execution;
  private readonly scheduler: Scheduler;
  private readonly intake: Intake;
  private readonly cancellation: Cancellation;
  private readonly listing: InstanceListing;
  private readonly expiry: Expiry;
  /** Batches being run: the database stays open until they have settled. */
  private readonly batches = new Set<Promise<void>>();
  private readonly housekeeping: Housekeeping;

  constructor(
    storage: Storage | Db,
    hasher: PasswordHasher,
    private readonly options: EngineOptions,
    private readonly log: Logger,
  ) {
    const where: Storage = 'kind' in storage ? storage : { kind: 'sqlite', db: storage };
    let lifetimes: Lifetimes;
    if (where.kind === 'sqlite') {
      const { db } = where;
      const events = new TaskEvents(db);
      this.commits = new GroupCommit(db);
      this.events = events;
      this.store = new SqliteTaskStore(db, this.commits, events, (change) => this.changed(change));
      lifetimes = new LifetimeStore(db);
    } else {
      const { pool, nodeId, leaseSeconds } = where;
      this.commits = null;
      const events = new PgTaskEvents(pool, (event) => this.seen(event), log);
      const store = new PgTaskStore(pool, { nodeId, leaseSeconds }, (change) => this.changed(change));
      this.events = events;
      this.store = store;
      this.shared = { store, events, leaseSeconds };
      lifetimes = new PgLifetimes(pool);
    }
    this.housekeeping = new Housekeeping(where.kind === 'sqlite' ? where.db : null, this.store, options.retentionSeconds, log);
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
    this.intake = new Intake(this.store, lifetimes, hasher, options);
    this.expiry = new Expiry(this.store, lifetimes, log);
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

  /**
   * An event of any node, read back from the shared table (PostgreSQL): what
   * another node changed wakes this one's scheduler and waiters too.
   */
  private seen(event: TaskEvent): void {
    if (event.type !== 'status') return;
    const status = event.data.status as Task['status'];
    if (status === 'queued') this.scheduler.queued(event.task_id);
    if (TERMINAL.has(status)) {
      this.waiters.ended(event.task_id);
      this.listing.changed();
    }
  }

  /**
   * Every third of a lease (PostgreSQL): renews this node's leases, stops
   * the create runs of tasks whose lease it lost and of creates whose cancel
   * was asked for on any node, and requeues
   * any node's tasks whose lease lapsed (a node that died).
   */
  private async beat(): Promise<void> {
    const shared = this.shared!;
    const { lost, cancelRequested } = await shared.store.heartbeat();
    if (lost.length) this.log.warn({ task_ids: lost }, 'lost the lease of running tasks (another node took them over): their results here are dropped');
    // Another node runs them now: a create run here is stopped rather than left to launch beside it (EC2's
    // ClientToken would return the same instance; an emulator may not). Its batch-mates go back to the queue
    // and adopt what it launched. A delete runs on: terminating twice is harmless.
    for (const id of lost) if (this.execution.stopRunOf(id)) this.log.warn({ task_id: id }, 'stopping the run of a task whose lease was lost');
    for (const id of cancelRequested) if (this.execution.stopRunOf(id)) this.log.info({ task_id: id }, 'cancel asked for on another node: stopping the run');
    const requeued = await shared.store.expireLeases();
    if (requeued.length) this.log.warn({ task_ids: requeued.map((task) => task.id) }, 'requeued tasks whose node stopped renewing its lease');
  }

  // --- Lifecycle: the app's hooks call these, in this order. ---

  /** Repairs what the last process left (recovery.ts), then starts taking tasks. */
  async start(): Promise<void> {
    if (this.shared) {
      // Nodes share the queue: a task left running is another node's, or a dead node's whose lease lapses (beat).
      await this.shared.events.start();
      await this.beat();
      this.leaseTimer = setInterval(() => {
        this.beat().catch((error: unknown) => this.log.error({ err: error }, 'lease heartbeat failed; trying again'));
      }, (this.shared.leaseSeconds * 1000) / 3);
    } else {
      await recover(this.store, this.options.maxAttempts, this.log);
    }
    // The last process's playbooks are gone now (recover killed any left): their run folders hold hashes.
    const stale = removeStaleRunFolders(this.options.runsDir);
    if (stale) this.log.warn({ removed: stale }, 'removed the run folders of playbooks interrupted by the last stop');
    this.housekeeping.start();
    // What expired while the service was down is queued before anything else is accepted.
    await this.expiry.start();
    this.scheduler.start();
    this.intake.open();
    if (this.options.paused) {
      this.log.warn({ queued: await this.store.waiting() }, 'EC2_API_PAUSED=1: tasks are accepted and stored, none is started');
    }
  }

  /** Shutdown, first step: new tasks are refused (503) and no new batch starts. */
  refuseNewTasks(): void {
    this.intake.close();
    void this.expiry.stop();
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
    await this.expiry.stop();
    await this.housekeeping.stop();
    await this.scheduler.stop();
    clearInterval(this.leaseTimer);
    await this.shared?.events.stop();
  }

  /**
   * For a process that must exit now (a second signal, or the shutdown bound
   * passed): kills every playbook at once and puts its tasks back in the
   * queue, synchronously, as the end of the grace period would.
   */
  abort(): void {
    this.intake.close();
    this.pool.killAll();
    // The tasks this process runs, as it knows them without a read (the process exits on this tick). A batch
    // claimed but not yet started is left `running`: the next start (or, on PostgreSQL, its lease) requeues it.
    const running = this.execution.runningTaskIds();
    this.store.requeue(running, true).catch((error: unknown) => this.log.error({ err: error }, 'could not requeue the running tasks'));
    this.commits?.flush();
  }

  // --- What routes ask. ---

  get isAccepting(): boolean {
    return this.intake.isAccepting;
  }

  async stats(): Promise<{ queued: number; runningPlaybooks: number }> {
    return { queued: await this.store.waiting(), runningPlaybooks: this.pool.running };
  }

  /** Throws the refusal a new task would get now (shutting down, queue full): cheap, for routes to call first. */
  assertCanAccept(): Promise<void> {
    return this.intake.assertCanAccept();
  }

  createTask(login: { username: string; password: string }, request: CreateRequest = { owner: EVERYONE }): Promise<Submitted> {
    return this.intake.create(login, request);
  }

  deleteTask(ip: string, owner: Owner = EVERYONE): Promise<Submitted> {
    return this.intake.delete(ip, owner);
  }

  /** Moves the expiry of the instance at `ip` to `ttlSeconds` from now (PATCH /instances/<ip>). */
  extend(ip: string, ttlSeconds: number, owner: Owner): Promise<Lifetime> {
    return this.expiry.extend(ip, ttlSeconds, owner);
  }

  /** Queues the deletes of the instances whose expiry is due now (the timer does this each second); how many. */
  expireDue(): Promise<number> {
    return this.expiry.sweep();
  }

  get(id: string): Promise<Task | undefined> {
    return this.store.get(id);
  }

  list(filter: TaskFilter): Promise<Task[]> {
    return this.store.list(filter);
  }

  /**
   * The playbook output of a task: live while a run that holds it goes on
   * (which may be after the task itself has ended, when its result came
   * early), else as stored; `complete` once nothing more will be added.
   */
  async output(id: string): Promise<{ log: CappedText; complete: boolean } | undefined> {
    const task = await this.store.get(id);
    if (!task) return undefined;
    const live = this.execution.liveLog(id);
    return { log: live ?? (await this.store.getLog(id)) ?? EMPTY_OUTPUT, complete: !live && TERMINAL.has(task.status) };
  }

  eventsSince(id: string, afterId: number): Promise<TaskEvent[]> {
    return this.events.since(id, afterId);
  }

  /** Every task's events after `afterId`, oldest first, at most `limit`. */
  eventsAfter(afterId: number, limit: number): Promise<TaskEvent[]> {
    return this.events.after(afterId, limit);
  }

  /** The id of the newest event: a feed that starts now continues after it. */
  lastEventId(): Promise<number> {
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

  /**
   * The instances this service manages that `owner` may see, read from EC2
   * (shared by concurrent callers, reused for a few seconds), each with its
   * create task's owner and expiry. An instance whose create task is not
   * known here is an admin's to see.
   */
  async instances(owner: Owner = EVERYONE): Promise<OwnedInstance[]> {
    const listed = await this.listing.get();
    const tasks = await Promise.all(listed.map((instance) => (instance.task_id ? this.store.get(instance.task_id) : undefined)));
    return listed.flatMap((instance, i) => {
      const found = tasks[i];
      const create = found?.action === 'create' ? found : undefined;
      if (!(create ? canSee(owner, create.created_by) : owner.admin)) return [];
      return [{ ...instance, created_by: create?.created_by ?? null, expires_at: create?.expires_at ?? null }];
    });
  }

  /** Every playbook run that ends (task batches, cleanups, listings): for metrics. */
  onRun(listener: (report: RunReport) => void): () => void {
    return this.pool.onRun(listener);
  }

  /** Throws when the database cannot answer a trivial query (readiness). */
  ping(): Promise<void> {
    return this.store.ping();
  }

  /** Task counts by action and status, read at each call (metrics). */
  countByStatus(): Promise<{ action: string; status: string; count: number }[]> {
    return this.store.countByStatus();
  }

  private track(batch: Promise<void>): Promise<void> {
    this.batches.add(batch);
    return batch.finally(() => this.batches.delete(batch));
  }
}
