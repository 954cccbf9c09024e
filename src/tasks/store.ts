// The `tasks` table, which is the queue, and the idempotency keys: every read
// and write of a task goes through here, as statements prepared once. Queued
// rows wait; `claim` marks a batch of them running under one batch id; the
// playbook's outcome ends them. The store also keeps the count of waiting
// tasks, since it makes every change to it. (An instance's lifetime — the
// expiry columns of its create's row — is read and written by lifetimes.ts.)
import type { CappedText } from '../ansible/output.js';
import { DEFAULT_OWNER } from '../config.js';
import type { Db } from './db.js';
import type { GroupCommit } from './group-commit.js';
import type { Outcome, Progress, Task, TaskAction, TaskFilter, TaskReason } from './model.js';
import { CANCELED } from './outcomes.js';

/** A task as SQLite holds it: JSON columns still as text. */
type TaskRow = Omit<Task, 'progress' | 'cancel_requested'> & { progress: string | null; cancel_requested: number };

export interface NewTask {
  id: string;
  action: TaskAction;
  params: object;
  /** The public IP a delete targets (creates learn theirs when they succeed). */
  ip?: string | null;
  /** The name of the token that asked for it (default: the default owner's). */
  created_by?: string;
  /** Set when the service queues it itself (an expiry). */
  reason?: TaskReason | null;
  /** A create's expiry, as an ISO time. */
  expires_at?: string | null;
  /** Stored already ended, never to run (a delete of an IP none of the asker's instances has). */
  ended?: Outcome & { status: 'failed' };
}

export interface IdempotencyKey {
  /** Keys are kept per owner: another token's same key is another key. */
  owner: string;
  key: string;
  request_hash: string;
  ttlSeconds: number;
}

export interface IdempotencyRecord {
  key: string;
  request_hash: string;
  task_id: string;
}

/** A claimed task with its parameters as stored: `unknown` until they are checked. */
export interface ClaimedRow {
  task: Task;
  params: unknown;
}

const COLUMNS =
  'id, action, status, ip, instance_id, instance_state, error, progress, attempts, cancel_requested, ' +
  'runner_pid, runner_start, created_by, reason, expires_at, created_at, started_at, finished_at';

const now = () => new Date().toISOString();

function toTask(row: TaskRow): Task {
  return {
    ...row,
    progress: row.progress ? (JSON.parse(row.progress) as Progress) : null,
    cancel_requested: row.cancel_requested === 1,
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export class TaskStore {
  private readonly stmt;
  private waitingCount: number;
  private readonly statements = new Map<string, ReturnType<Db['prepare']>>();

  constructor(
    private readonly db: Db,
    private readonly commits: GroupCommit,
  ) {
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO tasks (id, action, status, params, ip, created_by, reason, expires_at, created_at)
         VALUES (@id, @action, 'queued', @params, @ip, @created_by, @reason, @expires_at, @created_at)`,
      ),
      get: db.prepare(`SELECT ${COLUMNS} FROM tasks WHERE id = ?`),
      params: db.prepare('SELECT params FROM tasks WHERE id = ?'),
      log: db.prepare('SELECT log AS head, log_tail AS tail, log_size AS size FROM tasks WHERE id = ?'),
      unfinished: db.prepare(`SELECT ${COLUMNS} FROM tasks WHERE status IN ('queued', 'running') ORDER BY rowid`),
      countWaiting: db.prepare(`SELECT count(*) AS n FROM tasks WHERE status = 'queued'`),
      countByStatus: db.prepare('SELECT action, status, count(*) AS count FROM tasks GROUP BY action, status'),
      ping: db.prepare('SELECT 1'),
      // The oldest waiting tasks, in arrival order; a delete only when no
      // other delete of its IP runs or comes before it in this batch, so two
      // operations never act on one IP at once (the second finds it gone).
      claim: db.prepare(
        `UPDATE tasks SET status = 'running', batch_id = @batch, attempts = attempts + 1,
           started_at = coalesce(started_at, @at), progress = NULL, error = NULL
         WHERE id IN (
           SELECT id FROM (
             SELECT id, rowid AS seq FROM tasks WHERE status = 'queued' AND action = 'create'
             UNION ALL
             SELECT id, seq FROM (
               SELECT id, rowid AS seq, ip, row_number() OVER (PARTITION BY ip ORDER BY rowid) AS nth
               FROM tasks WHERE status = 'queued' AND action = 'delete'
             ) WHERE nth = 1 AND ip NOT IN (
               SELECT ip FROM tasks WHERE status = 'running' AND action = 'delete' AND ip IS NOT NULL)
           ) ORDER BY seq LIMIT @limit)`,
      ),
      batch: db.prepare(`SELECT ${COLUMNS}, params FROM tasks WHERE batch_id = ? AND status = 'running' ORDER BY rowid`),
      batchIds: db.prepare(`SELECT id FROM tasks WHERE batch_id = ? AND status = 'running' ORDER BY rowid`),
      running: db.prepare(`SELECT id, batch_id FROM tasks WHERE status = 'running' ORDER BY rowid`),
      runner: db.prepare('UPDATE tasks SET runner_pid = @pid, runner_start = @start WHERE id = @id'),
      progress: db.prepare(`UPDATE tasks SET progress = @progress WHERE id = @id AND status = 'running'`),
      finish: db.prepare(
        `UPDATE tasks SET status = @status, ip = coalesce(@ip, ip), instance_id = @instance_id,
           instance_state = @instance_state, error = @error, finished_at = @at,
           runner_pid = NULL, runner_start = NULL
         WHERE id = @id AND status IN ('queued', 'running')`,
      ),
      setLog: db.prepare('UPDATE tasks SET log = @head, log_tail = @tail, log_size = @size WHERE id = @id'),
      requeue: db.prepare(
        `UPDATE tasks SET status = 'queued', runner_pid = NULL, runner_start = NULL, progress = NULL, batch_id = NULL,
           attempts = attempts - @refund WHERE id = @id AND status = 'running'`,
      ),
      // Only a task that never ran, or a delete (it leaves nothing behind), ends at once: a create
      // that ran before (stopped, or interrupted) may have launched its instance.
      cancelQueued: db.prepare(
        `UPDATE tasks SET status = 'canceled', error = @error, finished_at = @at
         WHERE id = @id AND status = 'queued' AND cancel_requested = 0 AND (started_at IS NULL OR action = 'delete')`,
      ),
      requestCancel: db.prepare(`UPDATE tasks SET cancel_requested = 1 WHERE id = ? AND status IN ('queued', 'running')`),
      cancelRequested: db.prepare('SELECT cancel_requested FROM tasks WHERE id = ?'),
      keyGet: db.prepare('SELECT key, request_hash, task_id FROM idempotency_keys WHERE owner = ? AND key = ? AND expires_at > ?'),
      keyDelete: db.prepare('DELETE FROM idempotency_keys WHERE owner = ? AND key = ?'),
      keyInsert: db.prepare(
        `INSERT INTO idempotency_keys (owner, key, request_hash, task_id, expires_at)
         VALUES (@owner, @key, @request_hash, @task_id, @expires_at)`,
      ),
      keyPurge: db.prepare('DELETE FROM idempotency_keys WHERE expires_at <= ?'),
    };
    this.waitingCount = (this.stmt.countWaiting.get() as { n: number }).n;
  }

  /** Tasks waiting for a playbook run (committed; kept in step with every change the store makes). */
  get waiting(): number {
    return this.waitingCount;
  }

  /**
   * Queues a new task (and its idempotency key) in the next group commit,
   * with whatever `alongside` writes in the same transaction; resolves once
   * it is on disk.
   */
  async add<T>(task: NewTask, key: IdempotencyKey | undefined, alongside: (task: Task) => T): Promise<{ task: Task; alongside: T }> {
    const result = await this.commits.run(() =>
      this.db.transaction(() => {
        const added = this.insert(task, key);
        return { task: added, alongside: alongside(added) };
      })(),
    );
    if (!task.ended) this.waitingCount++;
    return result;
  }

  private insert(task: NewTask, key: IdempotencyKey | undefined): Task {
    const created_at = now();
    const owned = { created_by: task.created_by ?? DEFAULT_OWNER, reason: task.reason ?? null, expires_at: task.expires_at ?? null };
    this.stmt.insert.run({ id: task.id, action: task.action, params: JSON.stringify(task.params), ip: task.ip ?? null, ...owned, created_at });
    if (key) {
      // An expired key may still hold the row: the new request takes it over.
      this.stmt.keyDelete.run(key.owner, key.key);
      this.stmt.keyInsert.run({
        owner: key.owner,
        key: key.key,
        request_hash: key.request_hash,
        task_id: task.id,
        expires_at: new Date(Date.now() + key.ttlSeconds * 1000).toISOString(),
      });
    }
    if (task.ended) {
      const { status, instance_state = null, error = null } = task.ended;
      this.stmt.finish.run({ id: task.id, status, ip: null, instance_id: null, instance_state, error, at: created_at });
      return { ...this.get(task.id)! };
    }
    // What the row now holds, without reading it back: this is the accept hot path.
    return {
      id: task.id,
      action: task.action,
      status: 'queued',
      ip: task.ip ?? null,
      instance_id: null,
      instance_state: null,
      error: null,
      progress: null,
      attempts: 0,
      cancel_requested: false,
      runner_pid: null,
      runner_start: null,
      ...owned,
      created_at,
      started_at: null,
      finished_at: null,
    };
  }

  get(id: string): Task | undefined {
    const row = this.stmt.get.get(id) as TaskRow | undefined;
    return row && toTask(row);
  }

  /** The stored parameters of a task, parsed but not checked (undefined when unreadable). */
  paramsOf(id: string): unknown {
    const row = this.stmt.params.get(id) as { params: string } | undefined;
    return row && parseJson(row.params);
  }

  getLog(id: string): CappedText | undefined {
    return this.stmt.log.get(id) as CappedText | undefined;
  }

  unfinished(): Task[] {
    return (this.stmt.unfinished.all() as TaskRow[]).map(toTask);
  }

  /** queued → running for up to `limit` tasks under `batchId`; how many were claimed. */
  claim(batchId: string, limit: number): number {
    const { changes } = this.stmt.claim.run({ batch: batchId, limit, at: now() });
    this.waitingCount -= changes;
    return changes;
  }

  /** The running tasks of a batch, with their stored parameters. */
  batch(batchId: string): ClaimedRow[] {
    return (this.stmt.batch.all(batchId) as (TaskRow & { params: string })[]).map(({ params, ...row }) => ({
      task: toTask(row),
      params: parseJson(params),
    }));
  }

  batchIds(batchId: string): string[] {
    return (this.stmt.batchIds.all(batchId) as { id: string }[]).map((row) => row.id);
  }

  /** Running tasks by batch id. */
  runningBatches(): Map<string, string[]> {
    const batches = new Map<string, string[]>();
    for (const { id, batch_id } of this.stmt.running.all() as { id: string; batch_id: string | null }[]) {
      const key = batch_id ?? '';
      batches.set(key, [...(batches.get(key) ?? []), id]);
    }
    return batches;
  }

  setRunner(ids: string[], pid: number | null, start: string | null): void {
    this.db.transaction(() => {
      for (const id of ids) this.stmt.runner.run({ id, pid, start });
    })();
  }

  setProgress(ids: string[], progress: Progress): void {
    const json = JSON.stringify(progress);
    this.db.transaction(() => {
      for (const id of ids) this.stmt.progress.run({ id, progress: json });
    })();
  }

  /** running/queued → a terminal state; false when it had already ended. */
  finish(id: string, outcome: Outcome): boolean {
    const { changes } = this.stmt.finish.run({
      id,
      status: outcome.status,
      ip: outcome.ip ?? null,
      instance_id: outcome.instance_id ?? null,
      instance_state: outcome.instance_state ?? null,
      error: outcome.error ?? null,
      at: now(),
    });
    return changes === 1;
  }

  /** The playbook output a task keeps as its log (tasks of one batch share their run's). */
  setLog(ids: string[], log: CappedText): void {
    this.db.transaction(() => {
      for (const id of ids) this.stmt.setLog.run({ id, ...log });
    })();
  }

  /** running → queued. `refund` gives back the attempt when the run was stopped on purpose. */
  requeue(ids: string[], refund: boolean): void {
    let changed = 0;
    this.db.transaction(() => {
      for (const id of ids) changed += this.stmt.requeue.run({ id, refund: refund ? 1 : 0 }).changes;
    })();
    this.waitingCount += changed;
  }

  /** queued → canceled, for a task with nothing to clean up; false otherwise (not queued, or it may have launched). */
  cancelQueued(id: string): boolean {
    const canceled = this.stmt.cancelQueued.run({ id, at: now(), error: CANCELED }).changes === 1;
    if (canceled) this.waitingCount--;
    return canceled;
  }

  /**
   * Records that a task is to be canceled (the one place cancel state lives):
   * a running one, or a queued create that ran before; its next run is the
   * clean-up. False when it has ended.
   */
  requestCancel(id: string): boolean {
    return this.stmt.requestCancel.run(id).changes === 1;
  }

  isCancelRequested(id: string): boolean {
    return (this.stmt.cancelRequested.get(id) as { cancel_requested: number } | undefined)?.cancel_requested === 1;
  }

  /** Newest first, with the filters of GET /tasks. */
  list(filter: TaskFilter): Task[] {
    const where: string[] = [];
    const params: Record<string, string | number> = { limit: filter.limit };
    const add = (sql: string, name: keyof TaskFilter) => {
      const value = filter[name];
      if (value === undefined) return;
      where.push(sql);
      params[name] = value;
    };
    add('status = @status', 'status');
    add('action = @action', 'action');
    add('ip = @ip', 'ip');
    add('created_at > @created_after', 'created_after');
    add('created_at < @created_before', 'created_before');
    add('id < @before_id', 'before_id');
    add('created_by = @created_by', 'created_by');
    const sql = `SELECT ${COLUMNS} FROM tasks ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT @limit`;
    // Few distinct shapes (2^7): the statement cache keeps this cheap.
    return (this.cached(sql).all(params) as TaskRow[]).map(toTask);
  }

  private cached(sql: string) {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  /** Task counts by action and status (metrics). */
  countByStatus(): { action: string; status: string; count: number }[] {
    return this.stmt.countByStatus.all() as { action: string; status: string; count: number }[];
  }

  /** Throws when the database cannot answer a trivial query (readiness). */
  ping(): void {
    this.stmt.ping.get();
  }

  findKey(owner: string, key: string): IdempotencyRecord | undefined {
    return this.stmt.keyGet.get(owner, key, now()) as IdempotencyRecord | undefined;
  }

  purgeExpiredKeys(): number {
    return this.stmt.keyPurge.run(now()).changes;
  }
}
