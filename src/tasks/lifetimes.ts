// Instances as the tasks table knows them: a create that succeeded names one
// (its ip, instance_id, owner) and holds its lifetime (`expires_at`, and
// `expiry_task_id` once the expiry has queued its delete). Every read and
// write of those columns is here, as statements prepared once; the rules
// are docs/task-lifecycle.md, "Expiry".
import type { Db } from './db.js';

/** A succeeded create, seen as the instance it launched. */
export interface LiveCreate {
  /** The create task's id (the instance's TaskId tag). */
  id: string;
  ip: string;
  instance_id: string | null;
  created_by: string;
  expires_at: string | null;
}

/** An expiry that is due: its create, and what the delete it queues needs. */
export interface DueExpiry {
  id: string;
  ip: string;
  created_by: string;
}

/**
 * On a succeeded create `c`: a later task has ended its instance — a delete
 * of its IP accepted after it launched that succeeded, or that ran and found
 * nothing (one stored ended without a run, for a token the instance is not
 * its own, says nothing about it), or a later create that was given the same
 * IP (EC2 reused the address).
 */
export const INSTANCE_ENDED = `EXISTS (SELECT 1 FROM tasks d WHERE d.ip = c.ip AND d.id <> c.id AND (
  (d.action = 'delete' AND d.created_at >= c.finished_at
    AND (d.status = 'succeeded' OR (d.status = 'failed' AND d.instance_state = 'not_found' AND d.started_at IS NOT NULL)))
  OR (d.action = 'create' AND d.status = 'succeeded' AND d.finished_at > c.finished_at)))`;

/** On a succeeded create `c`: a delete of its IP, accepted after it launched, waits or runs. */
export const DELETING = `(SELECT d.id FROM tasks d WHERE d.ip = c.ip AND d.action = 'delete'
  AND d.status IN ('queued', 'running') AND d.created_at >= c.finished_at ORDER BY d.rowid LIMIT 1)`;

/** The terms of the partial index tasks_pending_expiry, so that the sweep reads only pending expiries. */
const PENDING = `c.expires_at IS NOT NULL AND c.expiry_task_id IS NULL AND c.expires_at <= @now AND c.action = 'create'`;

/** Instances' lifetimes as the engine uses them, on either database (pg-lifetimes.ts for PostgreSQL). */
export interface Lifetimes {
  /** Expiries due now (oldest first, at most `limit`). */
  due(limit: number): Promise<DueExpiry[]>;
  /** Clears the expiries past due that can never fire; how many. */
  clearMoot(): Promise<number>;
  /** Moves the expiry of a create's instance (pending again, if its expiry had fired). */
  extend(createId: string, expiresAt: string): Promise<void>;
  /** The create whose instance holds this IP now, with the delete of it that waits or runs, if any. */
  live(ip: string): Promise<(LiveCreate & { deleting: string | null }) | undefined>;
  /** What EC2_API_MAX_INSTANCES counts: creates queued or running, and instances live by the tasks table. */
  countInstances(): Promise<number>;
}

/** Written by the store in the transaction that adds an expiry's delete (NewTask.expiryOf): never two deletes for one expiry. */
export const MARK_EXPIRED = 'UPDATE tasks SET expiry_task_id = ? WHERE id = ? AND expiry_task_id IS NULL';

export class LifetimeStore implements Lifetimes {
  private readonly stmt;

  constructor(db: Db) {
    this.stmt = {
      // Due, and nothing else ends the instance or is about to.
      due: db.prepare(
        `SELECT c.id, c.ip, c.created_by FROM tasks c
         WHERE ${PENDING} AND c.status = 'succeeded' AND c.ip IS NOT NULL AND NOT ${INSTANCE_ENDED} AND ${DELETING} IS NULL
         ORDER BY c.expires_at LIMIT @limit`,
      ),
      // Past due, and never to fire: no instance (the create failed or was canceled), or it has ended otherwise.
      clearMoot: db.prepare(
        `UPDATE tasks AS c SET expires_at = NULL
         WHERE ${PENDING} AND (c.status IN ('failed', 'canceled') OR (c.status = 'succeeded' AND (c.ip IS NULL OR ${INSTANCE_ENDED})))`,
      ),
      extend: db.prepare(`UPDATE tasks SET expires_at = @expires_at, expiry_task_id = NULL WHERE id = @id AND action = 'create'`),
      live: db.prepare(
        `SELECT c.id, c.ip, c.instance_id, c.created_by, c.expires_at, ${DELETING} AS deleting FROM tasks c
         WHERE c.ip = ? AND c.action = 'create' AND c.status = 'succeeded' AND NOT ${INSTANCE_ENDED}
         ORDER BY c.finished_at DESC LIMIT 1`,
      ),
      countInstances: db.prepare(
        `SELECT (SELECT count(*) FROM tasks WHERE action = 'create' AND status IN ('queued', 'running'))
              + (SELECT count(*) FROM tasks c WHERE c.action = 'create' AND c.status = 'succeeded' AND c.ip IS NOT NULL AND NOT ${INSTANCE_ENDED})
              AS n`,
      ),
    };
  }

  /** Expiries due now (oldest first, at most `limit`). */
  async due(limit: number): Promise<DueExpiry[]> {
    return this.stmt.due.all({ now: new Date().toISOString(), limit }) as DueExpiry[];
  }

  /** Clears the expiries past due that can never fire; how many. */
  async clearMoot(): Promise<number> {
    return this.stmt.clearMoot.run({ now: new Date().toISOString() }).changes;
  }

  /** Moves the expiry of a create's instance (pending again, if its expiry had fired). */
  async extend(createId: string, expiresAt: string): Promise<void> {
    this.stmt.extend.run({ id: createId, expires_at: expiresAt });
  }

  /** The create whose instance holds this IP now, with the delete of it that waits or runs, if any. */
  async live(ip: string): Promise<(LiveCreate & { deleting: string | null }) | undefined> {
    return this.stmt.live.get(ip) as (LiveCreate & { deleting: string | null }) | undefined;
  }

  /** What EC2_API_MAX_INSTANCES counts: creates queued or running, and instances live by the tasks table. */
  async countInstances(): Promise<number> {
    return (this.stmt.countInstances.get() as { n: number }).n;
  }
}
