// The `tasks` and `idempotency_keys` tables: every read and write of a task
// record goes through here, as prepared statements compiled once.
import type { Db } from './db.js';
import type { Outcome, Progress, Task, TaskAction, TaskFilter } from './types.js';

/** A task as SQLite holds it: JSON columns still as text. */
type TaskRow = Omit<Task, 'params' | 'progress' | 'cancel_requested'> & {
  params: string;
  progress: string | null;
  cancel_requested: number;
};

export interface NewTask {
  id: string;
  action: TaskAction;
  params: Task['params'];
  ip?: string | null;
}

export interface IdempotencyRecord {
  key: string;
  request_hash: string;
  task_id: string;
}

/** Stored logs are capped: a runaway playbook must not fill the disk or break /status. */
export const LOG_LIMIT = 256 * 1024;

const COLUMNS =
  'id, action, status, params, ip, instance_id, instance_state, error, progress, attempts, cancel_requested, ' +
  'runner_pid, runner_start, created_at, started_at, finished_at';

const now = () => new Date().toISOString();

function toTask(row: TaskRow): Task {
  return {
    ...row,
    params: JSON.parse(row.params) as Task['params'],
    progress: row.progress ? (JSON.parse(row.progress) as Progress) : null,
    cancel_requested: row.cancel_requested === 1,
  };
}

export function capLog(log: string): string {
  if (log.length <= LOG_LIMIT) return log;
  const keep = LOG_LIMIT / 2;
  const cut = log.length - 2 * keep;
  return `${log.slice(0, keep)}\n… ${cut} characters cut …\n${log.slice(-keep)}`;
}

export class TaskStore {
  private readonly stmt;

  constructor(private readonly db: Db) {
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO tasks (id, action, status, params, ip, created_at) VALUES (@id, @action, 'queued', @params, @ip, @created_at)`,
      ),
      get: db.prepare(`SELECT ${COLUMNS} FROM tasks WHERE id = ?`),
      log: db.prepare('SELECT log FROM tasks WHERE id = ?'),
      unfinished: db.prepare(`SELECT ${COLUMNS} FROM tasks WHERE status IN ('queued', 'running') ORDER BY created_at, id`),
      countQueued: db.prepare(`SELECT count(*) AS n FROM tasks WHERE status = 'queued'`),
      start: db.prepare(
        `UPDATE tasks SET status = 'running', attempts = attempts + 1, started_at = coalesce(started_at, @at),
           progress = NULL, error = NULL WHERE id = @id AND status = 'queued'`,
      ),
      runner: db.prepare('UPDATE tasks SET runner_pid = @pid, runner_start = @start WHERE id = @id'),
      progress: db.prepare(`UPDATE tasks SET progress = @progress WHERE id = @id AND status = 'running'`),
      finish: db.prepare(
        `UPDATE tasks SET status = @status, ip = coalesce(@ip, ip), instance_id = @instance_id,
           instance_state = @instance_state, error = @error, finished_at = @at, log = @log,
           runner_pid = NULL, runner_start = NULL
         WHERE id = @id AND status IN ('queued', 'running')`,
      ),
      requeue: db.prepare(
        `UPDATE tasks SET status = 'queued', runner_pid = NULL, runner_start = NULL, progress = NULL,
           attempts = attempts - @refund WHERE id = @id AND status = 'running'`,
      ),
      cancelQueued: db.prepare(
        `UPDATE tasks SET status = 'canceled', error = 'canceled by request', finished_at = @at
         WHERE id = @id AND status = 'queued'`,
      ),
      requestCancel: db.prepare(`UPDATE tasks SET cancel_requested = 1 WHERE id = ? AND status = 'running'`),
      keyGet: db.prepare('SELECT key, request_hash, task_id FROM idempotency_keys WHERE key = ? AND expires_at > ?'),
      keyDelete: db.prepare('DELETE FROM idempotency_keys WHERE key = ?'),
      keyInsert: db.prepare(
        'INSERT INTO idempotency_keys (key, request_hash, task_id, expires_at) VALUES (@key, @request_hash, @task_id, @expires_at)',
      ),
      keyPurge: db.prepare('DELETE FROM idempotency_keys WHERE expires_at <= ?'),
    };
  }

  /** Writes a new queued task (and its idempotency key) in one transaction. */
  insert(task: NewTask, key?: { key: string; request_hash: string; ttlSeconds: number }): Task {
    const created_at = now();
    this.db.transaction(() => {
      this.stmt.insert.run({
        id: task.id,
        action: task.action,
        params: JSON.stringify(task.params),
        ip: task.ip ?? null,
        created_at,
      });
      if (key) {
        // An expired key may still hold the row: the new request takes it over.
        this.stmt.keyDelete.run(key.key);
        this.stmt.keyInsert.run({
          key: key.key,
          request_hash: key.request_hash,
          task_id: task.id,
          expires_at: new Date(Date.now() + key.ttlSeconds * 1000).toISOString(),
        });
      }
    })();
    // What the row now holds, without reading it back: this is the accept hot path.
    return {
      id: task.id,
      action: task.action,
      status: 'queued',
      params: task.params,
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

  getLog(id: string): string | undefined {
    return (this.stmt.log.get(id) as { log: string } | undefined)?.log;
  }

  unfinished(): Task[] {
    return (this.stmt.unfinished.all() as TaskRow[]).map(toTask);
  }

  countQueued(): number {
    return (this.stmt.countQueued.get() as { n: number }).n;
  }

  /** queued → running; false when the task was not queued (canceled, or taken already). */
  start(id: string): boolean {
    return this.stmt.start.run({ id, at: now() }).changes === 1;
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
  finish(id: string, outcome: Outcome, log = ''): boolean {
    return (
      this.stmt.finish.run({
        id,
        status: outcome.status,
        ip: outcome.ip ?? null,
        instance_id: outcome.instance_id ?? null,
        instance_state: outcome.instance_state ?? null,
        error: outcome.error ?? null,
        at: now(),
        log: capLog(log),
      }).changes === 1
    );
  }

  /** running → queued. `refund` gives back the attempt when the run was stopped on purpose. */
  requeue(ids: string[], refund: boolean): void {
    this.db.transaction(() => {
      for (const id of ids) this.stmt.requeue.run({ id, refund: refund ? 1 : 0 });
    })();
  }

  /** queued → canceled; false when it was not queued any more. */
  cancelQueued(id: string): boolean {
    return this.stmt.cancelQueued.run({ id, at: now() }).changes === 1;
  }

  /** Marks a running task to be canceled; false when it is not running. */
  requestCancel(id: string): boolean {
    return this.stmt.requestCancel.run(id).changes === 1;
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

  private readonly statements = new Map<string, ReturnType<Db['prepare']>>();

  private cached(sql: string) {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  findKey(key: string): IdempotencyRecord | undefined {
    return this.stmt.keyGet.get(key, now()) as IdempotencyRecord | undefined;
  }

  purgeExpiredKeys(): number {
    return this.stmt.keyPurge.run(now()).changes;
  }
}
