// The service's EC2 call budget: one token bucket per account, Region and
// kind of call, shared by every playbook run (docs/pacing.md). Pure logic on
// an injected clock; pacer-server.ts serves it to the module processes.
//
// A caller takes tokens before each call and is told how long to wait: the
// bucket may go below zero, which queues callers in the order they came
// (each waits until the tokens it took have refilled), without a timer here.
// A throttled call (RequestLimitExceeded) lowers the refill rate by BETA and
// empties the bucket; each second without one raises the rate again by
// INCREASE of the configured rate, up to it (additive increase,
// multiplicative decrease, with botocore adaptive mode's BETA and floor).

import { CALL_KINDS, type BucketSize, type CallKind, type PacingLimits } from '../config.js';

export { CALL_KINDS, type CallKind, type PacingLimits };

/** Multiplicative decrease on a throttled call (botocore's CubicCalculator _BETA). */
export const BETA = 0.7;
/** The lowest refill rate, tokens per second (botocore's TokenBucket _MIN_RATE). */
export const MIN_RATE = 0.5;
/** Additive increase: this fraction of the configured rate per second without a throttle. */
export const INCREASE = 0.1;
/** Throttles closer together than this count once: calls sent together are refused together. */
export const DECREASE_WINDOW_S = 1;
/**
 * A call that waits for its token goes this much after the token is due: its
 * trip to EC2 may be shorter than the first calls' were (no new connection),
 * and one arriving a few ms before EC2's bucket refilled is refused.
 */
export const SEND_SLACK_S = 0.1;
/** Buckets the service keeps at most (one per endpoint, Region and account a playbook uses). */
export const MAX_BUCKETS = 64;

/** Where a bucket belongs: EC2 meters per account and Region; the account is named by a digest of the access key id. */
export interface BucketKey {
  endpoint: string;
  region: string;
  account: string;
}

export interface BucketView extends BucketKey {
  kind: CallKind;
  capacity: number;
  /** Tokens left now; negative while callers wait for tokens they already took. */
  tokens: number;
  /** The refill rate in use (tokens/s), at most the configured one. */
  rate: number;
  configuredRate: number;
  calls: number;
  throttled: number;
}

/** A bucket's state as a shared store keeps it (pg-pacer.ts); times in that store's seconds. */
export interface BucketState {
  tokens: number;
  rate: number;
  at: number;
  lastDecrease: number;
}

/**
 * What the pacing socket (pacer-server.ts), /metrics and /healthz use: this
 * process's buckets (Pacer, below), or the buckets nodes sharing PostgreSQL
 * keep in the database (SharedPacer, pg-pacer.ts), which answer later.
 */
export interface CallPacer {
  readonly limits: PacingLimits;
  /** This node's name when the buckets are shared with other nodes; null when they are this process's own. */
  readonly node: string | null;
  take(key: BucketKey, kind: CallKind, n?: number): number | Promise<number>;
  throttled(key: BucketKey, kind: CallKind): void | Promise<void>;
  snapshot(): BucketView[] | Promise<BucketView[]>;
}

/** The seconds a caller waits when its take left `tokens` in a bucket refilling at `rate`. */
export function waitFor(tokens: number, rate: number): number {
  return tokens >= 0 ? 0 : -tokens / rate + SEND_SLACK_S;
}

export class Bucket {
  tokens: number;
  rate: number;
  calls = 0;
  throttled = 0;
  private at: number;
  private lastDecrease = -Infinity;

  /** A bucket as a shared store holds it. */
  static restore(size: BucketSize, state: BucketState): Bucket {
    const bucket = new Bucket(size, state.at);
    bucket.tokens = state.tokens;
    bucket.rate = state.rate;
    bucket.lastDecrease = state.lastDecrease;
    return bucket;
  }

  get state(): BucketState {
    return { tokens: this.tokens, rate: this.rate, at: this.at, lastDecrease: this.lastDecrease };
  }

  constructor(
    private readonly size: BucketSize,
    now: number,
  ) {
    this.tokens = size.capacity;
    this.rate = size.refillPerSecond;
    this.at = now;
  }

  get capacity(): number {
    return this.size.capacity;
  }

  get configuredRate(): number {
    return this.size.refillPerSecond;
  }

  /** Brings tokens and rate to `now` (seconds). */
  advance(now: number): void {
    const elapsed = Math.max(0, now - this.at);
    this.at = Math.max(this.at, now);
    if (elapsed === 0) return;
    // Refill at the rate in force over the interval, then raise the rate.
    this.tokens = Math.min(this.size.capacity, this.tokens + elapsed * this.rate);
    this.rate = Math.min(this.size.refillPerSecond, this.rate + elapsed * INCREASE * this.size.refillPerSecond);
  }

  /** Takes `n` tokens; returns the seconds to wait before the call. */
  take(n: number, now: number): number {
    this.advance(now);
    this.calls += n;
    this.tokens -= n;
    return waitFor(this.tokens, this.rate);
  }

  /** EC2 refused a call: its bucket is empty, and ours was too generous. */
  throttle(now: number): void {
    this.advance(now);
    this.throttled += 1;
    if (now - this.lastDecrease < DECREASE_WINDOW_S) return;
    this.lastDecrease = now;
    this.rate = Math.max(Math.min(MIN_RATE, this.size.refillPerSecond), this.rate * BETA);
    this.tokens = Math.min(this.tokens, 0);
  }
}

/** A bucket's name: its endpoint, Region, account and kind. */
export const bucketId = (key: BucketKey, kind: CallKind) => JSON.stringify([key.endpoint, key.region, key.account, kind]);

export class PacerFullError extends Error {
  override name = 'PacerFullError';
}

export class Pacer implements CallPacer {
  readonly node = null;
  private readonly buckets = new Map<string, { key: BucketKey; kind: CallKind; bucket: Bucket }>();

  /** `clock` gives seconds (monotonic). */
  constructor(
    readonly limits: PacingLimits,
    private readonly clock: () => number = () => performance.now() / 1000,
  ) {}

  /** Takes `n` tokens of `kind` for `key`; returns the seconds the caller must wait before sending. */
  take(key: BucketKey, kind: CallKind, n = 1): number {
    return this.bucket(key, kind).take(n, this.clock());
  }

  /** Records a throttled call (RequestLimitExceeded) of `kind` for `key`. */
  throttled(key: BucketKey, kind: CallKind): void {
    this.bucket(key, kind).throttle(this.clock());
  }

  /** Every bucket as it is now, for /metrics and /healthz. */
  snapshot(): BucketView[] {
    const now = this.clock();
    return [...this.buckets.values()].map(({ key, kind, bucket }) => {
      bucket.advance(now);
      return {
        ...key,
        kind,
        capacity: bucket.capacity,
        tokens: bucket.tokens,
        rate: bucket.rate,
        configuredRate: bucket.configuredRate,
        calls: bucket.calls,
        throttled: bucket.throttled,
      };
    });
  }

  private bucket(key: BucketKey, kind: CallKind): Bucket {
    const id = bucketId(key, kind);
    let entry = this.buckets.get(id);
    if (!entry) {
      if (this.buckets.size >= MAX_BUCKETS * CALL_KINDS.length) throw new PacerFullError(`more than ${MAX_BUCKETS} accounts and Regions`);
      entry = { key: { endpoint: key.endpoint, region: key.region, account: key.account }, kind, bucket: new Bucket(this.limits[kind], this.clock()) };
      this.buckets.set(id, entry);
    }
    return entry.bucket;
  }
}
