// The EC2 pacer's buckets in PostgreSQL, so that N nodes share one budget per
// account, Region and kind of call instead of each spending EC2's whole rate
// (docs/multi-node.md). Each take or throttle is one transaction on the
// bucket's row (locked FOR UPDATE), applying pacer.ts's own Bucket rules on
// the database's clock, so the nodes' clocks need not agree.
import type pg from 'pg';
import type { BucketSize } from '../config.js';
import { Bucket, type BucketState, type SharedBuckets } from './pacer.js';

export class PgBuckets implements SharedBuckets {
  constructor(private readonly pool: pg.Pool) {}

  take(id: string, size: BucketSize, n: number): Promise<number> {
    return this.change(id, size, (bucket, now) => bucket.take(n, now));
  }

  async throttle(id: string, size: BucketSize): Promise<void> {
    await this.change(id, size, (bucket, now) => bucket.throttle(now));
  }

  private async change<T>(id: string, size: BucketSize, apply: (bucket: Bucket, now: number) => T): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // A new bucket starts full, as pacer.ts's does; -1e18 stands for "never decreased" (JSON has no -Infinity).
      await client.query(
        `INSERT INTO rate_buckets (id, tokens, rate, at, last_decrease)
         VALUES ($1, $2, $3, extract(epoch FROM clock_timestamp()), -1e18) ON CONFLICT (id) DO NOTHING`,
        [id, size.capacity, size.refillPerSecond],
      );
      const { rows } = await client.query<BucketState & { now: number }>(
        `SELECT tokens, rate, at, last_decrease AS "lastDecrease", extract(epoch FROM clock_timestamp())::float8 AS now
         FROM rate_buckets WHERE id = $1 FOR UPDATE`,
        [id],
      );
      const { now, ...state } = rows[0]!;
      const bucket = Bucket.restore(size, state);
      const result = apply(bucket, now);
      const after = bucket.state;
      await client.query('UPDATE rate_buckets SET tokens = $2, rate = $3, at = $4, last_decrease = $5 WHERE id = $1', [
        id,
        after.tokens,
        after.rate,
        after.at,
        after.lastDecrease,
      ]);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }
}
