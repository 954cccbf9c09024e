// Task events on PostgreSQL, seen by every node (docs/multi-node.md). Each
// commit that writes events sends NOTIFY; a node LISTENs, and on each
// wake-up (and every second, since a notification is lost while the
// listening connection is down) reads the table after the last event it
// published, in id order, and tells its watchers: an SSE client on node B
// sees node A's tasks. Ids come from a sequence, so a transaction that took
// a lower id may commit after a higher one: a gap is waited for a moment
// before it is passed over (a rolled-back write leaves one for good).
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { ALL, toEvent, type EventLog, type EventRow, type NewEvent, type TaskEvent } from './events.js';
import { EVENTS_CHANNEL } from './pg-store.js';

/** How long a gap in the ids is waited for before the events after it are published. */
const GAP_WAIT_MS = 2_000;
const POLL_MS = 1_000;
const PAGE = 1_000;

export class PgTaskEvents implements EventLog {
  private readonly emitter = new EventEmitter();
  private last = 0;
  private gapSince: number | null = null;
  private listener: pg.PoolClient | null = null;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    private readonly pool: pg.Pool,
    /** Every event published, from any node (the service wakes its scheduler and waiters on status events). */
    private readonly onEvent: (event: TaskEvent) => void,
    private readonly log: { warn(obj: object, msg?: string): void },
  ) {
    this.emitter.setMaxListeners(0);
  }

  /** From the newest event on: what came before is history, read with `since` and `after`. */
  async start(): Promise<void> {
    this.last = await this.lastId();
    await this.listen();
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.polling;
    const listener = this.listener;
    this.listener = null;
    if (listener) {
      await listener.query(`UNLISTEN ${EVENTS_CHANNEL}`).catch(() => undefined);
      listener.release();
    }
  }

  private async listen(): Promise<void> {
    const client = await this.pool.connect();
    client.on('notification', () => this.poll());
    client.on('error', (err) => {
      // The connection dropped: listen again on a new one; the poll covers what was missed meanwhile.
      this.log.warn({ err }, 'lost the PostgreSQL connection that listens for events; listening again');
      client.release(err);
      if (this.listener === client) this.listener = null;
      setTimeout(() => void (this.stopped ? undefined : this.listen().catch(() => undefined)), POLL_MS).unref();
    });
    await client.query(`LISTEN ${EVENTS_CHANNEL}`);
    this.listener = client;
  }

  /** Reads and publishes what is new; one read at a time, and one more if woken meanwhile. */
  private poll(): void {
    if (this.stopped) return;
    if (this.polling) {
      this.again = true;
      return;
    }
    this.polling = this.readNew()
      .catch((err: unknown) => this.log.warn({ err }, 'could not read new task events; trying again'))
      .finally(() => {
        this.polling = null;
        if (this.again) {
          this.again = false;
          this.poll();
        }
      });
  }

  private async readNew(): Promise<void> {
    for (;;) {
      const rows = await this.after(this.last, PAGE);
      for (const event of rows) {
        if (event.id !== this.last + 1) {
          this.gapSince ??= Date.now();
          if (Date.now() - this.gapSince < GAP_WAIT_MS) {
            // A write that took the missing id may still commit: come back for it (the poll timer will).
            return;
          }
        }
        this.gapSince = null;
        this.last = event.id;
        this.emitter.emit(event.task_id, event);
        this.emitter.emit(ALL, event);
        this.onEvent(event);
      }
      if (rows.length < PAGE) return;
    }
  }

  publish(): void {
    // Published by the read-back above, for this node's events as for the others': once each, in order.
    this.poll();
  }

  async record(events: NewEvent[]): Promise<void> {
    if (!events.length) return;
    const at = new Date().toISOString();
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      for (const { taskId, type, data } of events) {
        await client.query('INSERT INTO task_events (task_id, at, type, data) VALUES ($1, $2, $3, $4)', [taskId, at, type, JSON.stringify(data)]);
      }
      await client.query(`SELECT pg_notify('${EVENTS_CHANNEL}', '')`);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  async since(taskId: string, afterId = 0): Promise<TaskEvent[]> {
    const { rows } = await this.pool.query<EventRow>(
      'SELECT id::int AS id, task_id, at, type, data FROM task_events WHERE task_id = $1 AND id > $2 ORDER BY id',
      [taskId, afterId],
    );
    return rows.map(toEvent);
  }

  async after(afterId: number, limit: number): Promise<TaskEvent[]> {
    const { rows } = await this.pool.query<EventRow>(
      'SELECT id::int AS id, task_id, at, type, data FROM task_events WHERE id > $1 ORDER BY id LIMIT $2',
      [afterId, limit],
    );
    return rows.map(toEvent);
  }

  async lastId(): Promise<number> {
    const { rows } = await this.pool.query<{ id: number }>('SELECT coalesce(max(id), 0)::int AS id FROM task_events');
    return rows[0]!.id;
  }

  subscribe(taskId: string | null, listener: (event: TaskEvent) => void): () => void {
    const name = taskId ?? ALL;
    this.emitter.on(name, listener);
    return () => this.emitter.off(name, listener);
  }
}
