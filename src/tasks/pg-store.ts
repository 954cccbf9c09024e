// The task store on PostgreSQL, shared by several nodes (the contract is in
// store.ts, the design in docs/multi-node.md). The tasks table is still the
// queue. What differs from the SQLite store, and why:
// - A claim is `FOR UPDATE SKIP LOCKED`, under one transaction-level
//   advisory lock: the rule "one delete per IP, none for an IP a running
//   delete holds" must see other nodes' claims, which SKIP LOCKED hides.
// - A claimed task carries a lease (`leased_by` this node, `lease_until`).
//   `heartbeat()` renews this node's and reports the cancels asked for on
//   other nodes; `expireLeases()` requeues any node's that lapsed.
// - Every write about a run (finish, requeue, progress, runner) is fenced by
//   the attempt this node claimed: a node that lost its lease and writes late
//   changes nothing.
// - Lease times are the database's clock, so nodes' clocks need not agree.
import pg from 'pg';
import type { CappedText } from '../ansible/output.js';
import { statusEvent, type TaskEvent } from './events.js';
import type { Outcome, Progress, Task, TaskFilter, TaskStatus } from './model.js';
import { INSTANCE_ENDED, MARK_EXPIRED } from './lifetimes.js';
import { CANCELED } from './outcomes.js';
import { KeyTaken, doneProgress, newlyQueued, ownershipOf, parseJson, readProgress, type ClaimedRow, type IdempotencyKey, type IdempotencyRecord, type NewTask, type RunLog, type StateChange, type TaskStore } from './store.js';

type TaskRow = Omit<Task, 'progress' | 'cancel_requested'> & { progress: string | null; cancel_requested: number };

const COLUMNS =
  'id, action, status, ip, instance_id, instance_state, error, progress, attempts, cancel_requested, ' +
  'runner_pid, runner_start, created_by, reason, expires_at, created_at, started_at, finished_at';

/** The database's time as the ISO text the tables hold. */
const DB_NOW = `to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
const dbNowPlus = (seconds: string) =>
  `to_char((clock_timestamp() + make_interval(secs => ${seconds})) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

const LIVE_KEY = (at: string) => `EXISTS (SELECT 1 FROM idempotency_keys k WHERE k.task_id = tasks.id AND k.expires_at > ${at})`;
const WITHOUT_HASH = `CASE WHEN action = 'create' AND ec2_api_json_valid(params) THEN (params::jsonb - 'password_hash')::text ELSE params END`;
const ENDED = `status IN ('succeeded', 'failed', 'canceled')`;
/** `?` placeholders (the SQL shared with SQLite) → `$1, $2, …` */
export const numbered = (query: string) => {
  let n = 0;
  return query.replace(/\?/g, () => `$${++n}`);
};

/** Any number, the same on every node: claims take turns on it (see the top). */
const CLAIM_LOCK = 0x0ec2a92;

/** The channel each commit that writes events notifies: a wake-up only (payloads are capped and lost while disconnected). */
export const EVENTS_CHANNEL = 'ec2_api_events';

const now = () => new Date().toISOString();


const toTask = (row: TaskRow): Task => ({ ...row, progress: readProgress(row.progress), cancel_requested: row.cancel_requested === 1 });

type Client = pg.PoolClient;

export interface PgStoreOptions {
  /** This node's name in `leased_by`: unique among the nodes (host, pid and a random part). */
  nodeId: string;
  /** How long a claim holds a task without a heartbeat (≤ 30 s). */
  leaseSeconds: number;
}

/** What a heartbeat found. */
export interface Heartbeat {
  /** Tasks this node ran whose lease it no longer holds (expired and requeued, or ended elsewhere): their run is to stop. */
  lost: string[];
  /** Tasks this node runs whose cancel was asked for (on any node). */
  cancelRequested: string[];
}

export class PgTaskStore implements TaskStore {
  /** The attempt under which this node claimed each task it runs: the fence of its writes. */
  private readonly held = new Map<string, number>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly options: PgStoreOptions,
    private readonly onChange: (change: StateChange) => void,
  ) {}

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** The tasks this node holds a lease on. */
  get heldIds(): string[] {
    return [...this.held.keys()];
  }

  private async transaction<T>(work: (client: Client) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /** `write` and a status event for each task it moved, in one transaction with a NOTIFY; then the hook, once committed. */
  private async change(write: (client: Client) => Promise<{ task: Task; from: TaskStatus | null }[]>): Promise<Task[]> {
    const changes = await this.transaction(async (client) => {
      const moved = await write(client);
      const out: { task: Task; event: TaskEvent }[] = [];
      for (const { task } of moved) out.push({ task, event: await insertEvent(client, statusEvent(task)) });
      if (out.length) await client.query(`SELECT pg_notify('${EVENTS_CHANNEL}', '')`);
      return out;
    });
    for (const change of changes) this.onChange(change);
    return changes.map(({ task }) => task);
  }

  async add(task: NewTask, key?: IdempotencyKey): Promise<Task> {
    const [added] = await this.change(async (client) => {
      const row = await this.insert(client, task, key);
      if (task.expiryOf) {
        const { rowCount } = await client.query(numbered(MARK_EXPIRED), [task.id, task.expiryOf]);
        if (rowCount !== 1) throw new Error(`the expiry of task ${task.expiryOf} was already handled`);
      }
      return [{ task: row, from: null }];
    });
    return added!;
  }

  private async insert(client: Client, task: NewTask, key: IdempotencyKey | undefined): Promise<Task> {
    const created_at = now();
    const owned = ownershipOf(task);
    await client.query(
      `INSERT INTO tasks (id, action, status, params, ip, created_by, reason, expires_at, created_at)
       VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8)`,
      [task.id, task.action, JSON.stringify(task.params), task.ip ?? null, owned.created_by, owned.reason, owned.expires_at, created_at],
    );
    if (key) {
      // An expired key is taken over (its ended task's hash goes); a live one, written by another node since
      // the intake looked, wins: this task is not stored, and the intake replays that one (KeyTaken).
      await client.query(
        `UPDATE tasks SET params = ${WITHOUT_HASH}
         WHERE id = (SELECT task_id FROM idempotency_keys WHERE owner = $1 AND key = $2 AND expires_at <= $3) AND ${ENDED}`,
        [key.owner, key.key, created_at],
      );
      await client.query('DELETE FROM idempotency_keys WHERE owner = $1 AND key = $2 AND expires_at <= $3', [key.owner, key.key, created_at]);
      const inserted = await client.query(
        `INSERT INTO idempotency_keys (owner, key, request_hash, task_id, expires_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (owner, key) DO NOTHING`,
        [key.owner, key.key, key.request_hash, task.id, new Date(Date.now() + key.ttlSeconds * 1000).toISOString()],
      );
      if (inserted.rowCount !== 1) throw new KeyTaken(key.owner, key.key);
    }
    if (task.ended) {
      const { status, instance_state = null, error = null } = task.ended;
      await client.query(
        `UPDATE tasks SET status = $2, instance_state = $3, error = $4, finished_at = $5 WHERE id = $1`,
        [task.id, status, instance_state, error, created_at],
      );
      return (await readTask(client, task.id))!;
    }
    return newlyQueued(task, created_at);
  }

  async claim(batchId: string, limit: number): Promise<number> {
    const claimed = await this.change(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1)', [CLAIM_LOCK]);
      // The rule of db.ts's claim, on `seq` for rowid. Creates are locked as they are picked (SKIP LOCKED: a
      // row another transaction holds, a cancel or a finish, is passed over, not waited for); deletes are
      // picked under the advisory lock, and the UPDATE checks each is still queued.
      const { rows } = await client.query<TaskRow & { seq: string }>(
        `WITH creates AS (
           SELECT id, seq FROM tasks WHERE status = 'queued' AND action = 'create' ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED
         ), deletes AS (
           SELECT id, seq FROM (
             SELECT id, seq, ip, row_number() OVER (PARTITION BY ip ORDER BY seq) AS nth
             FROM tasks WHERE status = 'queued' AND action = 'delete') d
           WHERE nth = 1 AND ip NOT IN (SELECT ip FROM tasks WHERE status = 'running' AND action = 'delete' AND ip IS NOT NULL)
           ORDER BY seq LIMIT $3
         ), picked AS (
           SELECT id, seq FROM creates UNION ALL SELECT id, seq FROM deletes ORDER BY seq LIMIT $3
         )
         UPDATE tasks SET status = 'running', batch_id = $1, attempts = attempts + 1,
           started_at = coalesce(started_at, $2), progress = NULL, error = NULL,
           leased_by = $4, lease_until = ${dbNowPlus('$5')}
         WHERE status = 'queued' AND id IN (SELECT id FROM picked)
         RETURNING ${COLUMNS}, seq`,
        [batchId, now(), limit, this.options.nodeId, this.options.leaseSeconds],
      );
      rows.sort((a, b) => Number(a.seq) - Number(b.seq));
      return rows.map(({ seq: _seq, ...row }) => {
        this.held.set(row.id, row.attempts);
        return { task: toTask(row), from: 'queued' as const };
      });
    });
    return claimed.length;
  }

  /**
   * The fence of a write about a run: the attempt this node claimed the task
   * under. A running task is written only by the node whose lease it holds,
   * under that attempt (or by anyone when no lease holds it: a row written
   * before leases, or by hand); null when this node does not hold it.
   */
  private fence(id: string): number | null {
    return this.held.get(id) ?? null;
  }

  async finish(id: string, outcome: Outcome, log?: RunLog): Promise<Task | undefined> {
    const attempt = this.fence(id);
    const [finished] = await this.change(async (client) => {
      const before = await readTask(client, id);
      if (!before) return [];
      const at = now();
      const { rowCount } = await client.query(
        `UPDATE tasks SET status = $2, ip = coalesce($3, ip), instance_id = $4, instance_state = $5, error = $6,
           finished_at = $7, progress = coalesce($8, progress), runner_pid = NULL, runner_start = NULL,
           leased_by = NULL, lease_until = NULL,
           params = CASE WHEN ${LIVE_KEY('$7')} THEN params ELSE ${WITHOUT_HASH} END
         WHERE id = $1 AND (status = 'queued' OR (status = 'running' AND (leased_by IS NULL OR (leased_by = $10 AND attempts = $9::int))))`,
        [
          id,
          outcome.status,
          outcome.ip ?? null,
          outcome.instance_id ?? null,
          outcome.instance_state ?? null,
          outcome.error ?? null,
          at,
          outcome.status === 'succeeded' ? JSON.stringify(doneProgress(before.progress)) : null,
          attempt,
          this.options.nodeId,
        ],
      );
      if (!rowCount) return [];
      if (log) {
        await client.query('INSERT INTO runs (id, head, tail, size) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING', [
          log.runId,
          log.log.head,
          log.log.tail,
          log.log.size,
        ]);
        await pointToRun(client, log.runId, [id]);
      }
      return [{ task: (await readTask(client, id))!, from: before.status }];
    });
    this.held.delete(id);
    return finished;
  }

  async requeue(ids: string[], refund: boolean): Promise<Task[]> {
    if (!ids.length) return [];
    const moved = await this.change(async (client) => {
      const out: { task: Task; from: 'running' }[] = [];
      for (const id of ids) {
        const { rows } = await client.query<TaskRow>(
          `UPDATE tasks SET status = 'queued', runner_pid = NULL, runner_start = NULL, progress = NULL, batch_id = NULL,
             leased_by = NULL, lease_until = NULL, attempts = attempts - $2
           WHERE id = $1 AND status = 'running' AND (leased_by IS NULL OR (leased_by = $4 AND attempts = $3::int))
           RETURNING ${COLUMNS}`,
          [id, refund ? 1 : 0, this.fence(id), this.options.nodeId],
        );
        if (rows[0]) out.push({ task: toTask(rows[0]), from: 'running' });
      }
      return out;
    });
    for (const id of ids) this.held.delete(id);
    return moved;
  }

  async cancelQueued(id: string): Promise<Task | undefined> {
    const [canceled] = await this.change(async (client) => {
      const at = now();
      const { rows } = await client.query<TaskRow>(
        `UPDATE tasks SET status = 'canceled', error = $3, finished_at = $2,
           params = CASE WHEN ${LIVE_KEY('$2')} THEN params ELSE ${WITHOUT_HASH} END
         WHERE id = $1 AND status = 'queued' AND (action = 'delete' OR (started_at IS NULL AND cancel_requested = 0))
         RETURNING ${COLUMNS}`,
        [id, at, CANCELED],
      );
      return rows[0] ? [{ task: toTask(rows[0]), from: 'queued' as const }] : [];
    });
    return canceled;
  }

  async requestCancel(id: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE tasks SET cancel_requested = 1 WHERE id = $1 AND action = 'create' AND status IN ('queued', 'running')`,
      [id],
    );
    return rowCount === 1;
  }

  async setRunner(ids: string[], pid: number | null, start: string | null): Promise<void> {
    await this.pool.query(
      `UPDATE tasks SET runner_pid = $2, runner_start = $3 WHERE id = ANY($1) AND leased_by = $4`,
      [ids, pid, start, this.options.nodeId],
    );
  }

  async setProgress(ids: string[], progress: Progress): Promise<void> {
    await this.pool.query(`UPDATE tasks SET progress = $2 WHERE id = ANY($1) AND status = 'running' AND leased_by = $3`, [
      ids,
      JSON.stringify(progress),
      this.options.nodeId,
    ]);
  }

  async setLog(runId: string, ids: string[], log: CappedText): Promise<void> {
    await this.transaction(async (client) => {
      await client.query(
        `INSERT INTO runs (id, head, tail, size) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET head = excluded.head, tail = excluded.tail, size = excluded.size`,
        [runId, log.head, log.tail, log.size],
      );
      await pointToRun(client, runId, ids);
    });
  }

  async purgeExpiredKeys(): Promise<number> {
    const at = now();
    return this.transaction(async (client) => {
      await client.query(
        `UPDATE tasks SET params = ${WITHOUT_HASH}
         WHERE id IN (SELECT task_id FROM idempotency_keys WHERE expires_at <= $1) AND ${ENDED} AND NOT ${LIVE_KEY('$1')}`,
        [at],
      );
      return (await client.query('DELETE FROM idempotency_keys WHERE expires_at <= $1', [at])).rowCount ?? 0;
    });
  }

  async purgeEnded(cutoff: string, limit: number): Promise<number> {
    return this.transaction(async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `SELECT c.id FROM tasks c WHERE c.finished_at < $1 AND c.${ENDED}
           AND NOT EXISTS (SELECT 1 FROM idempotency_keys k WHERE k.task_id = c.id)
           AND NOT (c.action = 'create' AND c.status = 'succeeded' AND c.ip IS NOT NULL AND NOT ${INSTANCE_ENDED})
         ORDER BY c.finished_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [cutoff, limit],
      );
      const ids = rows.map((row) => row.id);
      if (!ids.length) return 0;
      await client.query('DELETE FROM task_events WHERE task_id = ANY($1)', [ids]);
      const deleted = await client.query<{ run_id: string | null }>(`DELETE FROM tasks WHERE id = ANY($1) AND ${ENDED} RETURNING run_id`, [ids]);
      const runs = [...new Set(deleted.rows.flatMap((row) => (row.run_id ? [row.run_id] : [])))];
      await client.query('DELETE FROM runs WHERE id = ANY($1) AND NOT EXISTS (SELECT 1 FROM tasks WHERE run_id = runs.id)', [runs]);
      return ids.length;
    });
  }

  // --- Leases. ---

  /**
   * Renews this node's leases, in one statement, and reports the tasks it
   * no longer holds (another node requeued them after the lease lapsed: the
   * run here must stop, its writes are fenced anyway) and the cancels asked
   * for since (on whichever node).
   */
  async heartbeat(): Promise<Heartbeat> {
    const ids = this.heldIds;
    if (!ids.length) return { lost: [], cancelRequested: [] };
    const { rows } = await this.pool.query<{ id: string; attempts: number; cancel_requested: number }>(
      `UPDATE tasks SET lease_until = ${dbNowPlus('$3')}
       WHERE id = ANY($1) AND status = 'running' AND leased_by = $2
       RETURNING id, attempts, cancel_requested`,
      [ids, this.options.nodeId, this.options.leaseSeconds],
    );
    const renewed = new Map(rows.map((row) => [row.id, row]));
    const lost = ids.filter((id) => renewed.get(id)?.attempts !== this.held.get(id));
    for (const id of lost) this.held.delete(id);
    return { lost, cancelRequested: rows.filter((row) => row.cancel_requested === 1 && this.held.has(row.id)).map((row) => row.id) };
  }

  /** Requeues every task whose lease has lapsed, whichever node held it (the attempt is not refunded: a run may have begun). */
  async expireLeases(): Promise<Task[]> {
    return this.change(async (client) => {
      const { rows } = await client.query<TaskRow>(
        `UPDATE tasks SET status = 'queued', runner_pid = NULL, runner_start = NULL, progress = NULL, batch_id = NULL,
           leased_by = NULL, lease_until = NULL
         WHERE id IN (SELECT id FROM tasks WHERE status = 'running' AND lease_until < ${DB_NOW} FOR UPDATE SKIP LOCKED)
         RETURNING ${COLUMNS}`,
      );
      return rows.map((row) => ({ task: toTask(row), from: 'running' as const }));
    });
  }

  // --- Reads. ---

  async waiting(): Promise<number> {
    const { rows } = await this.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE status = 'queued'`);
    return rows[0]!.n;
  }

  async get(id: string): Promise<Task | undefined> {
    return readTask(this.pool, id);
  }

  async paramsOf(id: string): Promise<unknown> {
    const { rows } = await this.pool.query<{ params: string }>('SELECT params FROM tasks WHERE id = $1', [id]);
    return rows[0] && parseJson(rows[0].params);
  }

  async getLog(id: string): Promise<CappedText | undefined> {
    const { rows } = await this.pool.query<CappedText>(
      `SELECT coalesce(r.head, '') AS head, coalesce(r.tail, '') AS tail, coalesce(r.size, 0)::int AS size
       FROM tasks t LEFT JOIN runs r ON r.id = t.run_id WHERE t.id = $1`,
      [id],
    );
    return rows[0];
  }

  async unfinished(): Promise<Task[]> {
    const { rows } = await this.pool.query<TaskRow>(`SELECT ${COLUMNS} FROM tasks WHERE status IN ('queued', 'running') ORDER BY seq`);
    return rows.map(toTask);
  }

  async batch(batchId: string): Promise<ClaimedRow[]> {
    const { rows } = await this.pool.query<TaskRow & { params: string }>(
      `SELECT ${COLUMNS}, params FROM tasks WHERE batch_id = $1 AND status = 'running' ORDER BY seq`,
      [batchId],
    );
    return rows.map(({ params, ...row }) => ({ task: toTask(row), params: parseJson(params) }));
  }

  async list(filter: TaskFilter): Promise<Task[]> {
    const where: string[] = [];
    const values: (string | number)[] = [];
    const add = (column: string, op: string, name: keyof TaskFilter) => {
      const value = filter[name];
      if (value === undefined) return;
      values.push(value as string | number);
      where.push(`${column} ${op} $${values.length}`);
    };
    add('status', '=', 'status');
    add('action', '=', 'action');
    add('ip', '=', 'ip');
    add('created_at', '>', 'created_after');
    add('created_at', '<', 'created_before');
    add('id', '<', 'before_id');
    add('created_by', '=', 'created_by');
    values.push(filter.limit);
    // The id column is COLLATE "C" (pg-schema.ts): ids order byte by byte, as on SQLite (the cursor is the id).
    const { rows } = await this.pool.query<TaskRow>(
      `SELECT ${COLUMNS} FROM tasks ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${values.length}`,
      values,
    );
    return rows.map(toTask);
  }

  async findKey(owner: string, key: string): Promise<IdempotencyRecord | undefined> {
    const { rows } = await this.pool.query<IdempotencyRecord>(
      'SELECT key, request_hash, task_id FROM idempotency_keys WHERE owner = $1 AND key = $2 AND expires_at > $3',
      [owner, key, now()],
    );
    return rows[0];
  }

  async countByStatus(): Promise<{ action: string; status: string; count: number }[]> {
    const { rows } = await this.pool.query<{ action: string; status: string; count: number }>(
      'SELECT action, status, count(*)::int AS count FROM tasks GROUP BY action, status ORDER BY action, status',
    );
    return rows;
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }
}

async function readTask(db: pg.Pool | Client, id: string): Promise<Task | undefined> {
  const { rows } = await db.query<TaskRow>(`SELECT ${COLUMNS} FROM tasks WHERE id = $1`, [id]);
  return rows[0] && toTask(rows[0]);
}

async function insertEvent(client: Client, { taskId, type, data }: { taskId: string; type: TaskEvent['type']; data: Record<string, unknown> }): Promise<TaskEvent> {
  const at = now();
  const { rows } = await client.query<{ id: string }>('INSERT INTO task_events (task_id, at, type, data) VALUES ($1, $2, $3, $4) RETURNING id', [
    taskId,
    at,
    type,
    JSON.stringify(data),
  ]);
  return { id: Number(rows[0]!.id), task_id: taskId, at, type, data };
}

/** In the caller's transaction: `ids` now read run `runId`'s log; a log they pointed to before goes if nothing else does. */
async function pointToRun(client: Client, runId: string, ids: string[]): Promise<void> {
  const { rows } = await client.query<{ run_id: string }>(
    'SELECT DISTINCT run_id FROM tasks WHERE id = ANY($1) AND run_id IS NOT NULL AND run_id <> $2',
    [ids, runId],
  );
  await client.query('UPDATE tasks SET run_id = $2 WHERE id = ANY($1)', [ids, runId]);
  const unused = [...rows.map((row) => row.run_id), runId];
  await client.query('DELETE FROM runs WHERE id = ANY($1) AND NOT EXISTS (SELECT 1 FROM tasks WHERE run_id = runs.id)', [unused]);
}
