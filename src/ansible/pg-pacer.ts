// The EC2 pacer's buckets in PostgreSQL, so that N nodes share one budget per
// endpoint, Region, account and kind of call instead of each spending EC2's
// whole rate (docs/pacing.md, "Across nodes"). One row of `rate_buckets`
// per bucket; each take or throttle is ONE statement (INSERT … ON CONFLICT
// DO UPDATE … RETURNING): the row is locked, refilled to the database's
// clock (clock_timestamp(), read after the lock, so the nodes' clocks do not
// matter and callers are served in the order the row lock lets them in),
// and changed by pacer.ts's rules with pacer.ts's constants, passed as
// parameters. A bucket may go below zero, as in memory: each caller is told
// how long to wait.
//
// If the database does not answer, the node paces its own calls in memory,
// from the shared bucket as it last saw it, and says so once in its log.
import pg from 'pg';
import type { BucketSize } from '../config.js';
import {
  BETA,
  Bucket,
  bucketId,
  CALL_KINDS,
  DECREASE_WINDOW_S,
  INCREASE,
  MAX_BUCKETS,
  MIN_RATE,
  PacerFullError,
  waitFor,
  type BucketKey,
  type BucketView,
  type CallKind,
  type CallPacer,
  type PacingLimits,
} from './pacer.js';

/** A take or throttle waits at most this long for a connection, and as long for its answer; a module's socket gives up after 5 s. */
export const SHARED_TIMEOUT_MS = 1_500;
/** After the database failed to answer, the node paces alone this long before it asks again. */
export const SHARED_RETRY_S = 5;

/**
 * Bucket arithmetic in SQL, on the state `s` (tokens, rate, at,
 * last_decrease) at the time `c.now`: pacer.ts's Bucket.advance, then
 * Bucket.take or Bucket.throttle. The constants come from pacer.ts as
 * parameters; test/pg-pacer.test.ts checks the result against Bucket's,
 * step by step.
 *
 * $2 capacity, $3 configured rate, $4 the time (null: the database's
 * clock), $5 INCREASE; a take's $6 is the tokens taken; a throttle's $6
 * DECREASE_WINDOW_S, $7 BETA, $8 MIN_RATE.
 */
function changed(op: 'take' | 'throttle', state: { tokens: string; rate: string; at: string; lastDecrease: string }): string {
  const result =
    op === 'take'
      ? 'SELECT a.tokens - $6::float8 AS tokens, a.rate, a.at, a.last_decrease'
      : `SELECT CASE WHEN d.decrease THEN least(a.tokens, 0) ELSE a.tokens END AS tokens,
                CASE WHEN d.decrease THEN greatest(least($8::float8, $3::float8), a.rate * $7::float8) ELSE a.rate END AS rate,
                a.at,
                CASE WHEN d.decrease THEN c.now ELSE a.last_decrease END AS last_decrease
         FROM (SELECT c.now - a.last_decrease >= $6::float8 AS decrease) d`;
  return `
    (SELECT coalesce($4::float8, extract(epoch FROM clock_timestamp())::float8) AS now) c
    CROSS JOIN LATERAL (SELECT ${state.tokens} AS tokens, ${state.rate} AS rate, ${state.at} AS at, ${state.lastDecrease} AS last_decrease) s
    CROSS JOIN LATERAL (SELECT greatest(0, c.now - s.at) AS elapsed) e
    CROSS JOIN LATERAL (
      SELECT CASE WHEN e.elapsed = 0 THEN s.tokens ELSE least($2::float8, s.tokens + e.elapsed * s.rate) END AS tokens,
             CASE WHEN e.elapsed = 0 THEN s.rate ELSE least($3::float8, s.rate + e.elapsed * $5::float8 * $3::float8) END AS rate,
             greatest(s.at, c.now) AS at,
             s.last_decrease
    ) a
    CROSS JOIN LATERAL (${result}) o`;
}

/**
 * One statement: a new bucket starts full at the database's time (and is
 * taken from at once); an existing one is locked and changed. -1e18 stands
 * for "never decreased". `at` comes back as the database's time of the change.
 */
const statement = (op: 'take' | 'throttle') => `
  INSERT INTO rate_buckets AS b (id, tokens, rate, at, last_decrease)
  SELECT $1, o.tokens, o.rate, o.at, o.last_decrease
  FROM ${changed(op, { tokens: '$2::float8', rate: '$3::float8', at: 'c.now', lastDecrease: '-1e18::float8' })}
  ON CONFLICT (id) DO UPDATE SET (tokens, rate, at, last_decrease) = (
    SELECT o.tokens, o.rate, o.at, o.last_decrease
    FROM ${changed(op, { tokens: 'b.tokens', rate: 'b.rate', at: 'b.at', lastDecrease: 'b.last_decrease' })}
  )
  RETURNING tokens, rate, at, last_decrease AS "lastDecrease"`;

const TAKE = statement('take');
const THROTTLE = statement('throttle');

/** A bucket's row after a change; `at` and `lastDecrease` in the database's seconds. */
export interface BucketRow {
  tokens: number;
  rate: number;
  at: number;
  lastDecrease: number;
}

/**
 * The rows, on a pool of their own: a take is one short statement, and must
 * not queue behind the task store's transactions.
 */
export class PgBuckets {
  /** `clock`: the time in seconds to use instead of the database's (tests only). */
  constructor(
    readonly pool: pg.Pool,
    private readonly clock: (() => number) | null = null,
  ) {}

  async take(id: string, size: BucketSize, n: number): Promise<BucketRow> {
    return this.change(TAKE, id, size, [n]);
  }

  async throttle(id: string, size: BucketSize): Promise<BucketRow> {
    return this.change(THROTTLE, id, size, [DECREASE_WINDOW_S, BETA, MIN_RATE]);
  }

  /** The rows of `ids` and the database's time now. */
  async read(ids: string[]): Promise<{ rows: Map<string, BucketRow>; now: number }> {
    const { rows } = await this.pool.query<BucketRow & { id: string; now: number }>(
      `SELECT id, tokens, rate, at, last_decrease AS "lastDecrease", coalesce($2::float8, extract(epoch FROM clock_timestamp())::float8) AS now
       FROM (SELECT 1) one LEFT JOIN rate_buckets ON id = ANY($1::text[])`,
      [ids, this.clock?.() ?? null],
    );
    return { rows: new Map(rows.filter((row) => row.id !== null).map(({ id, now: _now, ...row }) => [id, row])), now: rows[0]!.now };
  }

  private async change(sql: string, id: string, size: BucketSize, rest: number[]): Promise<BucketRow> {
    const { rows } = await this.pool.query<BucketRow>(sql, [id, size.capacity, size.refillPerSecond, this.clock?.() ?? null, INCREASE, ...rest]);
    return rows[0]!;
  }
}

/** A pool for the pacer's statements alone: two connections, and an answer within SHARED_TIMEOUT_MS or an error. */
export function openPacerPool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: SHARED_TIMEOUT_MS, query_timeout: SHARED_TIMEOUT_MS });
  // A dropped idle connection must not take the process down: the pool makes a new one.
  pool.on('error', () => undefined);
  return pool;
}

/** What the pacer logs: that the database stopped answering, and that it answers again. */
export interface PacerLog {
  warn(object: object, message: string): void;
  info(object: object, message: string): void;
}

interface Entry {
  key: BucketKey;
  kind: CallKind;
  /** This node's own calls and throttles, for its /metrics. */
  calls: number;
  throttled: number;
  /** The shared bucket as this node last saw it, on this process's clock: what it paces from when the database does not answer. */
  local: Bucket;
}

/**
 * The pacer of a node sharing PostgreSQL: the buckets are the database's
 * (one budget for every node), the counts of calls and throttles this node's.
 */
export class SharedPacer implements CallPacer {
  private readonly entries = new Map<string, Entry>();
  /** While the database does not answer: until when (this process's seconds) the node paces alone. */
  private aloneUntil = -Infinity;
  private alone = false;

  constructor(
    readonly limits: PacingLimits,
    private readonly buckets: PgBuckets,
    readonly node: string,
    private readonly log: PacerLog,
    private readonly clock: () => number = () => performance.now() / 1000,
  ) {}

  async take(key: BucketKey, kind: CallKind, n = 1): Promise<number> {
    const entry = this.entry(key, kind);
    entry.calls += n;
    const row = await this.shared(entry, () => this.buckets.take(bucketId(key, kind), this.limits[kind], n));
    if (row) return waitFor(row.tokens, row.rate);
    return entry.local.take(n, this.clock());
  }

  async throttled(key: BucketKey, kind: CallKind): Promise<void> {
    const entry = this.entry(key, kind);
    entry.throttled += 1;
    const row = await this.shared(entry, () => this.buckets.throttle(bucketId(key, kind), this.limits[kind]));
    if (!row) entry.local.throttle(this.clock());
  }

  /** The shared buckets this node has used: tokens and rate as the database has them now, calls and throttles this node's. */
  async snapshot(): Promise<BucketView[]> {
    const now = this.clock();
    let shared: Awaited<ReturnType<PgBuckets['read']>> | null = null;
    if (this.entries.size > 0 && now >= this.aloneUntil) shared = await this.buckets.read([...this.entries.keys()]).catch(() => null);
    return [...this.entries].map(([id, { key, kind, calls, throttled, local }]) => {
      const size = this.limits[kind];
      const row = shared?.rows.get(id);
      // The row brought to the database's now by pacer.ts's own Bucket; without an answer, the last view of it.
      const bucket = row ? Bucket.restore(size, row) : local;
      bucket.advance(row ? shared!.now : now);
      return { ...key, kind, capacity: size.capacity, tokens: bucket.tokens, rate: bucket.rate, configuredRate: size.refillPerSecond, calls, throttled };
    });
  }

  /** The row after `change`, or null when the database does not answer (then the node paces alone for a while). */
  private async shared(entry: Entry, change: () => Promise<BucketRow>): Promise<BucketRow | null> {
    if (this.clock() < this.aloneUntil) return null;
    try {
      const row = await change();
      // Kept on this process's clock: the database's time of the change is now here.
      const now = this.clock();
      entry.local = Bucket.restore(this.limits[entry.kind], {
        tokens: row.tokens,
        rate: row.rate,
        at: now,
        lastDecrease: now - (row.at - row.lastDecrease),
      });
      if (this.alone) {
        this.alone = false;
        this.log.info({ node: this.node }, 'the EC2 pacer shares its buckets in PostgreSQL again');
      }
      return row;
    } catch (error) {
      this.aloneUntil = this.clock() + SHARED_RETRY_S;
      if (!this.alone) {
        this.alone = true;
        // The message only: node-postgres errors name the server, never a password.
        this.log.warn(
          { node: this.node, error: (error as Error).message },
          `the EC2 pacer cannot reach PostgreSQL: this node paces its own EC2 calls from the buckets as it last saw them, and asks the database again every ${SHARED_RETRY_S} s`,
        );
      }
      return null;
    }
  }

  private entry(key: BucketKey, kind: CallKind): Entry {
    const id = bucketId(key, kind);
    let entry = this.entries.get(id);
    if (!entry) {
      if (this.entries.size >= MAX_BUCKETS * CALL_KINDS.length) throw new PacerFullError(`more than ${MAX_BUCKETS} accounts and Regions`);
      entry = { key: { endpoint: key.endpoint, region: key.region, account: key.account }, kind, calls: 0, throttled: 0, local: new Bucket(this.limits[kind], this.clock()) };
      this.entries.set(id, entry);
    }
    return entry;
  }
}
