// Instances' lifetimes on PostgreSQL: the statements of lifetimes.ts, with
// `seq` for SQLite's rowid and numbered parameters.
import type pg from 'pg';
import { DELETING, INSTANCE_ENDED, type DueExpiry, type Lifetimes, type LiveCreate } from './lifetimes.js';

const PENDING = `c.expires_at IS NOT NULL AND c.expiry_task_id IS NULL AND c.expires_at <= $1 AND c.action = 'create'`;
const DELETING_PG = DELETING.replace('d.rowid', 'd.seq');

export class PgLifetimes implements Lifetimes {
  constructor(private readonly pool: pg.Pool) {}

  async due(limit: number): Promise<DueExpiry[]> {
    const { rows } = await this.pool.query<DueExpiry>(
      `SELECT c.id, c.ip, c.created_by FROM tasks c
       WHERE ${PENDING} AND c.status = 'succeeded' AND c.ip IS NOT NULL AND NOT ${INSTANCE_ENDED} AND ${DELETING_PG} IS NULL
       ORDER BY c.expires_at LIMIT $2`,
      [new Date().toISOString(), limit],
    );
    return rows;
  }

  async clearMoot(): Promise<number> {
    const { rowCount } = await this.pool.query(
      `UPDATE tasks AS c SET expires_at = NULL
       WHERE ${PENDING} AND (c.status IN ('failed', 'canceled') OR (c.status = 'succeeded' AND (c.ip IS NULL OR ${INSTANCE_ENDED})))`,
      [new Date().toISOString()],
    );
    return rowCount ?? 0;
  }

  async extend(createId: string, expiresAt: string): Promise<void> {
    await this.pool.query(`UPDATE tasks SET expires_at = $2, expiry_task_id = NULL WHERE id = $1 AND action = 'create'`, [createId, expiresAt]);
  }

  async live(ip: string): Promise<(LiveCreate & { deleting: string | null }) | undefined> {
    const { rows } = await this.pool.query<LiveCreate & { deleting: string | null }>(
      `SELECT c.id, c.ip, c.instance_id, c.created_by, c.expires_at, ${DELETING_PG} AS deleting FROM tasks c
       WHERE c.ip = $1 AND c.action = 'create' AND c.status = 'succeeded' AND NOT ${INSTANCE_ENDED}
       ORDER BY c.finished_at DESC LIMIT 1`,
      [ip],
    );
    return rows[0];
  }

  async countInstances(): Promise<number> {
    const { rows } = await this.pool.query<{ n: number }>(
      `SELECT ((SELECT count(*) FROM tasks WHERE action = 'create' AND status IN ('queued', 'running'))
            + (SELECT count(*) FROM tasks c WHERE c.action = 'create' AND c.status = 'succeeded' AND c.ip IS NOT NULL AND NOT ${INSTANCE_ENDED}))::int
            AS n`,
    );
    return rows[0]!.n;
  }
}
