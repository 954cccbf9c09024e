// The task store on the SQLite file (the contract is in store.ts): every
// read and write of a task, as statements prepared once. State changes go
// through the group commit, each with its status events in the same
// transaction; the count of waiting tasks is kept here, since every change
// to it is made here.
import type { CappedText } from '../ansible/output.js';
import type { Db } from './db.js';
import { statusEvent, type TaskEvents } from './events.js';
import type { GroupCommit } from './group-commit.js';
import { INSTANCE_ENDED, MARK_EXPIRED } from './lifetimes.js';
import type { Outcome, Progress, Task, TaskFilter, TaskStatus } from './model.js';
import { CANCELED } from './outcomes.js';
import { doneProgress, newlyQueued, ownershipOf, parseJson, readProgress, type ClaimedRow, type IdempotencyKey, type IdempotencyRecord, type NewTask, type RunLog, type StateChange, type TaskStore } from './store.js';

/** A task as SQLite holds it: JSON columns still as text. */
type TaskRow = Omit<Task, 'progress' | 'cancel_requested'> & { progress: string | null; cancel_requested: number };

const COLUMNS =
  'id, action, status, ip, instance_id, instance_state, error, progress, attempts, cancel_requested, ' +
  'runner_pid, runner_start, created_by, reason, expires_at, created_at, started_at, finished_at';

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
  return { ...row, progress: readProgress(row.progress), cancel_requested: row.cancel_requested === 1 };
}

export class SqliteTaskStore implements TaskStore {
  private readonly stmt;
  private waitingCount: number;
  private readonly statements = new Map<string, ReturnType<Db['prepare']>>();

  constructor(
    private readonly db: Db,
    private readonly commits: GroupCommit,
    private readonly events: TaskEvents,
    /** The one hook of a committed state change (see store.ts). */
    private readonly onChange: (change: StateChange) => void,
  ) {
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO tasks (id, action, status, params, ip, created_by, reason, expires_at, created_at)
         VALUES (@id, @action, 'queued', @params, @ip, @created_by, @reason, @expires_at, @created_at)`,
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
      runner: db.prepare('UPDATE tasks SET runner_pid = @pid, runner_start = @start WHERE id = @id'),
      progress: db.prepare(`UPDATE tasks SET progress = @progress WHERE id = @id AND status = 'running'`),
      // `progress` is replaced only when given (a success says it is done); a failed or canceled task keeps the step it stopped at.
      finish: db.prepare(
        `UPDATE tasks SET status = @status, ip = coalesce(@ip, ip), instance_id = @instance_id,
           instance_state = @instance_state, error = @error, finished_at = @at, progress = coalesce(@progress, progress),
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
      // The rule of what a cancel ends at once, written only here: a task that never ran, or any queued delete
      // (a delete leaves nothing behind). A create that ran before (stopped, or interrupted) may have launched
      // its instance: it gets its cancel recorded instead (requestCancel), and its next run cleans up.
      cancelQueued: db.prepare(
        `UPDATE tasks SET status = 'canceled', error = @error, finished_at = @at,
           params = CASE WHEN ${LIVE_KEY} THEN params ELSE ${WITHOUT_HASH} END
         WHERE id = @id AND status = 'queued' AND (action = 'delete' OR (started_at IS NULL AND cancel_requested = 0))`,
      ),
      // Only a create: a running delete may have sent TerminateInstances already, so it is never canceled (cancel.ts refuses it).
      requestCancel: db.prepare(
        `UPDATE tasks SET cancel_requested = 1 WHERE id = ? AND action = 'create' AND status IN ('queued', 'running')`,
      ),
      markExpired: db.prepare(MARK_EXPIRED),
      keyGet: db.prepare('SELECT key, request_hash, task_id FROM idempotency_keys WHERE owner = ? AND key = ? AND expires_at > ?'),
      keyDelete: db.prepare('DELETE FROM idempotency_keys WHERE owner = ? AND key = ?'),
      keyInsert: db.prepare(
        `INSERT INTO idempotency_keys (owner, key, request_hash, task_id, expires_at)
         VALUES (@owner, @key, @request_hash, @task_id, @expires_at)`,
      ),
      keyPurge: db.prepare('DELETE FROM idempotency_keys WHERE expires_at <= ?'),
      // The hash of an ended task whose key goes: taken over by a new request, or expired.
      forgetHashOfKey: db.prepare(
        `UPDATE tasks SET params = ${WITHOUT_HASH} WHERE id = (SELECT task_id FROM idempotency_keys WHERE owner = ? AND key = ?) AND ${ENDED}`,
      ),
      forgetHashesOfExpiredKeys: db.prepare(
        `UPDATE tasks SET params = ${WITHOUT_HASH}
         WHERE id IN (SELECT task_id FROM idempotency_keys WHERE expires_at <= @at) AND ${ENDED} AND NOT ${LIVE_KEY}`,
      ),
      // Ended before the cutoff, and no idempotency key (however old) points to it: keys are purged first.
      // Nor a create whose instance still lives: its row is the instance's owner and expiry (lifetimes.ts).
      expired: db.prepare(
        `SELECT c.id FROM tasks c WHERE c.finished_at < @cutoff AND c.${ENDED}
           AND NOT EXISTS (SELECT 1 FROM idempotency_keys k WHERE k.task_id = c.id)
           AND NOT (c.action = 'create' AND c.status = 'succeeded' AND c.ip IS NOT NULL AND NOT ${INSTANCE_ENDED})
         ORDER BY c.finished_at LIMIT @limit`,
      ).pluck(),
      deleteEvents: db.prepare('DELETE FROM task_events WHERE task_id = ?'),
      deleteTask: db.prepare(`DELETE FROM tasks WHERE id = ? AND ${ENDED} RETURNING run_id`).pluck(),
    };
    this.waitingCount = (this.stmt.countWaiting.get() as { n: number }).n;
  }

  async waiting(): Promise<number> {
    return this.waitingCount;
  }

  /**
   * Runs `write` in the next group commit, as one transaction with a status
   * event for each task it moved (it returns them, with the status each
   * left); once committed, keeps the count of waiting tasks and fires the
   * hook for each change.
   */
  private async change(write: () => { task: Task; from: TaskStatus | null }[]): Promise<Task[]> {
    const changes = await this.commits.run(() =>
      this.db.transaction(() =>
        write().map(({ task, from }) => ({ task, from, event: this.events.store([statusEvent(task)])[0]! })),
      )(),
    );
    for (const { task, from } of changes) this.waitingCount += Number(task.status === 'queued') - Number(from === 'queued');
    for (const { task, event } of changes) this.onChange({ task, event });
    return changes.map(({ task }) => task);
  }

  async add(task: NewTask, key?: IdempotencyKey): Promise<Task> {
    const [added] = await this.change(() => {
      const row = this.insert(task, key);
      if (task.expiryOf && this.stmt.markExpired.run(task.id, task.expiryOf).changes !== 1) {
        throw new Error(`the expiry of task ${task.expiryOf} was already handled`);
      }
      return [{ task: row, from: null }];
    });
    return added!;
  }

  private insert(task: NewTask, key: IdempotencyKey | undefined): Task {
    const created_at = now();
    const owned = ownershipOf(task);
    this.stmt.insert.run({ id: task.id, action: task.action, params: JSON.stringify(task.params), ip: task.ip ?? null, ...owned, created_at });
    if (key) {
      // An expired key may still hold the row: the new request takes it over (and its ended task's hash goes).
      this.stmt.forgetHashOfKey.run(key.owner, key.key);
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
      this.stmt.finish.run({ id: task.id, status, ip: null, instance_id: null, instance_state, error, progress: null, at: created_at });
      return this.read(task.id)!;
    }
    // What the row now holds, without reading it back: this is the accept hot path.
    return newlyQueued(task, created_at);
  }

  async claim(batchId: string, limit: number): Promise<number> {
    const claimed = await this.change(() => {
      this.stmt.claim.run({ batch: batchId, limit, at: now() });
      return this.readBatch(batchId).map(({ task }) => ({ task, from: 'queued' as const }));
    });
    return claimed.length;
  }

  async finish(id: string, outcome: Outcome, log?: RunLog): Promise<Task | undefined> {
    const [finished] = await this.change(() => {
      const before = this.read(id);
      if (!before) return [];
      const changed = this.stmt.finish.run({
        id,
        status: outcome.status,
        ip: outcome.ip ?? null,
        instance_id: outcome.instance_id ?? null,
        instance_state: outcome.instance_state ?? null,
        error: outcome.error ?? null,
        progress: outcome.status === 'succeeded' ? JSON.stringify(doneProgress(before.progress)) : null,
        at: now(),
      }).changes;
      if (!changed) return [];
      // The output so far is stored only if nothing of the run is yet: a hundred early results do not each rewrite up to 1 MiB.
      if (log) {
        this.stmt.runPutIfNone.run({ run: log.runId, ...log.log });
        this.pointToRun(log.runId, [id]);
      }
      return [{ task: this.read(id)!, from: before.status }];
    });
    return finished;
  }

  async requeue(ids: string[], refund: boolean): Promise<Task[]> {
    if (!ids.length) return [];
    return this.change(() =>
      ids
        .filter((id) => this.stmt.requeue.run({ id, refund: refund ? 1 : 0 }).changes === 1)
        .map((id) => ({ task: this.read(id)!, from: 'running' as const })),
    );
  }

  async cancelQueued(id: string): Promise<Task | undefined> {
    const [canceled] = await this.change(() => {
      if (this.stmt.cancelQueued.run({ id, at: now(), error: CANCELED }).changes !== 1) return [];
      return [{ task: this.read(id)!, from: 'queued' as const }];
    });
    return canceled;
  }

  async requestCancel(id: string): Promise<boolean> {
    return this.commits.run(() => this.stmt.requestCancel.run(id).changes === 1);
  }

  async setRunner(ids: string[], pid: number | null, start: string | null): Promise<void> {
    this.db.transaction(() => {
      for (const id of ids) this.stmt.runner.run({ id, pid, start });
    })();
  }

  async setProgress(ids: string[], progress: Progress): Promise<void> {
    const json = JSON.stringify(progress);
    this.db.transaction(() => {
      for (const id of ids) this.stmt.progress.run({ id, progress: json });
    })();
  }

  async setLog(runId: string, ids: string[], log: CappedText): Promise<void> {
    this.db.transaction(() => {
      this.stmt.runPut.run({ run: runId, ...log });
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

  async purgeExpiredKeys(): Promise<number> {
    const at = now();
    return this.db.transaction(() => {
      this.stmt.forgetHashesOfExpiredKeys.run({ at });
      return this.stmt.keyPurge.run(at).changes;
    })();
  }

  async purgeEnded(cutoff: string, limit: number): Promise<number> {
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

  async get(id: string): Promise<Task | undefined> {
    return this.read(id);
  }

  /** A task as it stands, synchronously (within a transaction of this store). */
  private read(id: string): Task | undefined {
    const row = this.stmt.get.get(id) as TaskRow | undefined;
    return row && toTask(row);
  }

  async paramsOf(id: string): Promise<unknown> {
    const row = this.stmt.params.get(id) as { params: string } | undefined;
    return row && parseJson(row.params);
  }

  async getLog(id: string): Promise<CappedText | undefined> {
    return this.stmt.log.get(id) as CappedText | undefined;
  }

  async unfinished(): Promise<Task[]> {
    return (this.stmt.unfinished.all() as TaskRow[]).map(toTask);
  }

  async batch(batchId: string): Promise<ClaimedRow[]> {
    return this.readBatch(batchId);
  }

  private readBatch(batchId: string): ClaimedRow[] {
    return (this.stmt.batch.all(batchId) as (TaskRow & { params: string })[]).map(({ params, ...row }) => ({
      task: toTask(row),
      params: parseJson(params),
    }));
  }

  async list(filter: TaskFilter): Promise<Task[]> {
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

  async findKey(owner: string, key: string): Promise<IdempotencyRecord | undefined> {
    return this.stmt.keyGet.get(owner, key, now()) as IdempotencyRecord | undefined;
  }

  async countByStatus(): Promise<{ action: string; status: string; count: number }[]> {
    return this.stmt.countByStatus.all() as { action: string; status: string; count: number }[];
  }

  async ping(): Promise<void> {
    this.stmt.ping.get();
  }
}
