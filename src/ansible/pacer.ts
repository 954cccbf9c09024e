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
 * Buckets kept outside the process, shared by the nodes of one database:
 * each take or throttle is one atomic change of the bucket's row, by the
 * same rules as here. Returns the seconds to wait.
 */
export interface SharedBuckets {
  take(id: string, size: BucketSize, n: number): Promise<number>;
  throttle(id: string, size: BucketSize): Promise<void>;
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
    return this.tokens >= 0 ? 0 : -this.tokens / this.rate + SEND_SLACK_S;
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

const bucketId = (key: BucketKey, kind: CallKind) => JSON.stringify([key.endpoint, key.region, key.account, kind]);

export class PacerFullError extends Error {
  override name = 'PacerFullError';
}

export class Pacer {
  private readonly buckets = new Map<string, { key: BucketKey; kind: CallKind; bucket: Bucket }>();

  /** `clock` gives seconds (monotonic). `shared`: the buckets nodes share (PostgreSQL); null: this process's own. */
  constructor(
    readonly limits: PacingLimits,
    private readonly clock: () => number = () => performance.now() / 1000,
    readonly shared: SharedBuckets | null = null,
  ) {}

  /**
   * `take`, from the shared bucket when there is one (the wait is the
   * cluster's); this node still counts its own calls, for its /metrics.
   */
  async takeShared(key: BucketKey, kind: CallKind, n = 1): Promise<number> {
    if (!this.shared) return this.take(key, kind, n);
    this.bucket(key, kind).calls += n;
    return this.shared.take(bucketId(key, kind), this.limits[kind], n);
  }

  /** `throttled`, in the shared bucket when there is one. */
  async throttledShared(key: BucketKey, kind: CallKind): Promise<void> {
    if (!this.shared) return this.throttled(key, kind);
    this.bucket(key, kind).throttled += 1;
    await this.shared.throttle(bucketId(key, kind), this.limits[kind]);
  }

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
