// The `tasks` table, which is the queue, and the idempotency keys: every read
// and write of a task goes through here, as statements prepared once. Queued
// rows wait; `claim` marks a batch of them running under one batch id; the
// playbook's outcome ends them. The store also keeps the count of waiting
// tasks, since it makes every change to it.
import type { CappedText } from '../ansible/output.js';
import type { Db } from './db.js';
import type { GroupCommit } from './group-commit.js';
import type { Outcome, Progress, Task, TaskAction, TaskFilter } from './model.js';
import { CANCELED } from './outcomes.js';

/** A task as SQLite holds it: JSON columns still as text. */
type TaskRow = Omit<Task, 'progress' | 'cancel_requested'> & { progress: string | null; cancel_requested: number };

export interface NewTask {
  id: string;
  action: TaskAction;
  params: object;
  /** The public IP a delete targets (creates learn theirs when they succeed). */
  ip?: string | null;
}

export interface IdempotencyKey {
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
  'runner_pid, runner_start, created_at, started_at, finished_at';

const now = () => new Date().toISOString();

/**
 * The password hash goes when a create can no longer run (it has ended),
 * unless a live idempotency key still points to the task: a replay with
 * that key is checked against it (intake.ts). Then it goes when the key
 * expires or is taken over. docs/task-lifecycle.md, "What is kept".
 */
const LIVE_KEY = 'EXISTS (SELECT 1 FROM idempotency_keys k WHERE k.task_id = tasks.id AND k.expires_at > @at)';
const WITHOUT_HASH = `CASE WHEN action = 'create' AND json_valid(params) THEN json_remove(params, '$.password_hash') ELSE params END`;
const ENDED = `status IN ('succeeded', 'failed', 'canceled')`;

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
        `INSERT INTO tasks (id, action, status, params, ip, created_at) VALUES (@id, @action, 'queued', @params, @ip, @created_at)`,
      ),
      get: db.prepare(`SELECT ${COLUMNS} FROM tasks WHERE id = ?`),
      params: db.prepare('SELECT params FROM tasks WHERE id = ?'),
      // A task keeps a pointer to its run's log (runs), shared by the tasks of that run.
      log: db.prepare(
        `SELECT coalesce(r.head, '') AS head, coalesce(r.tail, '') AS tail, coalesce(r.size, 0) AS size
         FROM tasks t LEFT JOIN runs r ON r.id = t.run_id WHERE t.id = ?`,
      ),
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
           runner_pid = NULL, runner_start = NULL,
           params = CASE WHEN ${LIVE_KEY} THEN params ELSE ${WITHOUT_HASH} END
         WHERE id = @id AND status IN ('queued', 'running')`,
      ),
      runPut: db.prepare(
        `INSERT INTO runs (id, head, tail, size) VALUES (@run, @head, @tail, @size)
         ON CONFLICT (id) DO UPDATE SET head = excluded.head, tail = excluded.tail, size = excluded.size`,
      ),
      runPutIfNone: db.prepare('INSERT INTO runs (id, head, tail, size) VALUES (@run, @head, @tail, @size) ON CONFLICT (id) DO NOTHING'),
      runOf: db.prepare('SELECT run_id FROM tasks WHERE id = ?').pluck(),
      runPoint: db.prepare('UPDATE tasks SET run_id = @run WHERE id = @id'),
      // A run's log goes with the last task that points to it.
      runDropUnused: db.prepare('DELETE FROM runs WHERE id = ? AND NOT EXISTS (SELECT 1 FROM tasks WHERE run_id = runs.id)'),
      requeue: db.prepare(
        `UPDATE tasks SET status = 'queued', runner_pid = NULL, runner_start = NULL, progress = NULL, batch_id = NULL,
           attempts = attempts - @refund WHERE id = @id AND status = 'running'`,
      ),
      // Only a task that never ran, or a delete (it leaves nothing behind), ends at once: a create
      // that ran before (stopped, or interrupted) may have launched its instance.
      cancelQueued: db.prepare(
        `UPDATE tasks SET status = 'canceled', error = @error, finished_at = @at,
           params = CASE WHEN ${LIVE_KEY} THEN params ELSE ${WITHOUT_HASH} END
         WHERE id = @id AND status = 'queued' AND cancel_requested = 0 AND (started_at IS NULL OR action = 'delete')`,
      ),
      requestCancel: db.prepare(`UPDATE tasks SET cancel_requested = 1 WHERE id = ? AND status IN ('queued', 'running')`),
      cancelRequested: db.prepare('SELECT cancel_requested FROM tasks WHERE id = ?'),
      keyGet: db.prepare('SELECT key, request_hash, task_id FROM idempotency_keys WHERE key = ? AND expires_at > ?'),
      keyDelete: db.prepare('DELETE FROM idempotency_keys WHERE key = ?'),
      keyInsert: db.prepare(
        'INSERT INTO idempotency_keys (key, request_hash, task_id, expires_at) VALUES (@key, @request_hash, @task_id, @expires_at)',
      ),
      keyPurge: db.prepare('DELETE FROM idempotency_keys WHERE expires_at <= ?'),
      // The hash of an ended task whose key goes: taken over by a new request, or expired.
      forgetHashOfKey: db.prepare(
        `UPDATE tasks SET params = ${WITHOUT_HASH} WHERE id = (SELECT task_id FROM idempotency_keys WHERE key = ?) AND ${ENDED}`,
      ),
      forgetHashesOfExpiredKeys: db.prepare(
        `UPDATE tasks SET params = ${WITHOUT_HASH}
         WHERE id IN (SELECT task_id FROM idempotency_keys WHERE expires_at <= @at) AND ${ENDED} AND NOT ${LIVE_KEY}`,
      ),
      // Ended before the cutoff, and no idempotency key (however old) points to it: keys are purged first.
      expired: db.prepare(
        `SELECT id FROM tasks WHERE finished_at < @cutoff AND ${ENDED}
           AND NOT EXISTS (SELECT 1 FROM idempotency_keys k WHERE k.task_id = tasks.id)
         ORDER BY finished_at LIMIT @limit`,
      ).pluck(),
      deleteEvents: db.prepare('DELETE FROM task_events WHERE task_id = ?'),
      deleteTask: db.prepare(`DELETE FROM tasks WHERE id = ? AND ${ENDED} RETURNING run_id`).pluck(),
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
    this.waitingCount++;
    return result;
  }

  private insert(task: NewTask, key: IdempotencyKey | undefined): Task {
    const created_at = now();
    this.stmt.insert.run({ id: task.id, action: task.action, params: JSON.stringify(task.params), ip: task.ip ?? null, created_at });
    if (key) {
      // An expired key may still hold the row: the new request takes it over (and its ended task's hash goes).
      this.stmt.forgetHashOfKey.run(key.key);
      this.stmt.keyDelete.run(key.key);
      this.stmt.keyInsert.run({
        key: key.key,
        request_hash: key.request_hash,
        task_id: task.id,
        expires_at: new Date(Date.now() + key.ttlSeconds * 1000).toISOString(),
      });
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

  /**
   * The output of run `runId` as the log of `ids`, when the run has ended:
   * stored once, however many tasks it ran. A run's log no task points to
   * any more goes.
   */
  setLog(runId: string, ids: string[], log: CappedText): void {
    this.db.transaction(() => {
      this.stmt.runPut.run({ run: runId, ...log });
      this.pointToRun(runId, ids);
    })();
  }

  /**
   * Points `ids` to the log of run `runId` while the run goes on (a task's
   * result came early): the output so far is stored only if nothing of that
   * run is yet, so a hundred early results do not each rewrite up to 1 MiB.
   * Readers get the live output meanwhile; `setLog` stores the whole log when
   * the run ends.
   */
  setLogSoFar(runId: string, ids: string[], log: CappedText): void {
    this.db.transaction(() => {
      this.stmt.runPutIfNone.run({ run: runId, ...log });
      this.pointToRun(runId, ids);
    })();
  }

  /** In the caller's transaction: `ids` now read run `runId`'s log; a log they pointed to before goes if nothing else does. */
  private pointToRun(runId: string, ids: string[]): void {
    const before = new Set<string>();
    for (const id of ids) {
      const previous = this.stmt.runOf.get(id) as string | null | undefined;
      if (previous && previous !== runId) before.add(previous);
      this.stmt.runPoint.run({ id, run: runId });
    }
    for (const run of before) this.stmt.runDropUnused.run(run);
    this.stmt.runDropUnused.run(runId); // when none of `ids` exists
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
    const sql = `SELECT ${COLUMNS} FROM tasks ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT @limit`;
    // Few distinct shapes (2^6): the statement cache keeps this cheap.
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

  findKey(key: string): IdempotencyRecord | undefined {
    return this.stmt.keyGet.get(key, now()) as IdempotencyRecord | undefined;
  }

  /** Drops the expired idempotency keys, and the password hashes of ended tasks only they kept. */
  purgeExpiredKeys(): number {
    const at = now();
    return this.db.transaction(() => {
      this.stmt.forgetHashesOfExpiredKeys.run({ at });
      return this.stmt.keyPurge.run(at).changes;
    })();
  }

  /**
   * Deletes up to `limit` tasks that ended before `cutoff` (ISO time), with
   * their events and, once no task points to it, their run's log: one short
   * transaction. Queued and running tasks, and tasks an idempotency key
   * points to, are never deleted. Returns how many went.
   */
  purgeEnded(cutoff: string, limit: number): number {
    return this.db.transaction(() => {
      const ids = this.stmt.expired.all({ cutoff, limit }) as string[];
      const runs = new Set<string>();
      for (const id of ids) {
        this.stmt.deleteEvents.run(id);
        const run = this.stmt.deleteTask.get(id) as string | null | undefined;
        if (run) runs.add(run);
      }
      for (const run of runs) this.stmt.runDropUnused.run(run);
      return ids.length;
    })();
  }
}
