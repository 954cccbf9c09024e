// Password hashing for the service, off the event loop: SHA-512-crypt runs on
// a small pool of worker threads (pool.ts) running the WebAssembly kernel
// (~2 ms of CPU a hash; bench/hash.mjs). Nothing starts on import or in the
// constructor: the threads start with the first call and stop at close().
//
// What stays in memory, and for how long:
// - The password goes to a worker as UTF-8 bytes in a buffer of its own (a
//   copy, so that a task can be retried on another thread); the worker wipes
//   its copy, the kernel everything it derived from it, before answering, and
//   this side wipes its copy once the answer is in.
// - No hash is reused across requests. Concurrent identical requests (same
//   username and password while the first is still hashing) share the one
//   hash in flight: the entry, keyed by an HMAC under a per-process random
//   key, is dropped the moment that hash is done, so nothing a password could
//   be checked against stays behind once the requests are answered. (A cache
//   of recent hashes would keep such a key for as long as it caches: an HMAC
//   checks a guess at the cost of one HMAC, the crypt hash at 5,000 SHA-512s.)
// - Errors never carry a password: every failure is a HashError with a fixed
//   message; only names and codes of underlying errors (and exit codes) are kept.
import { createHmac, randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { parseSha512Crypt } from './format.js';
import { PoolError, WorkerPool } from './pool.js';
import type { Implementation } from './sha512-crypt.js';
import type { HashTask } from './worker.js';

export type HashErrorCode =
  | 'ERR_PASSWORD_HASHER_CLOSED' // close() was called
  | 'ERR_PASSWORD_HASH_TIMEOUT' // a worker took longer than `timeoutMs` (it was stopped)
  | 'ERR_PASSWORD_HASH_QUEUE_FULL' // more than `maxQueue` hashes waiting for a thread
  | 'ERR_PASSWORD_HASH_FAILED'; // bad input, or the worker failed (threw, crashed, could not start)

const MESSAGES: Record<HashErrorCode, string> = {
  ERR_PASSWORD_HASHER_CLOSED: 'the password hasher is closed',
  ERR_PASSWORD_HASH_TIMEOUT: 'password hashing timed out',
  ERR_PASSWORD_HASH_QUEUE_FULL: 'too many passwords waiting to be hashed',
  ERR_PASSWORD_HASH_FAILED: 'password hashing failed',
};

/** Why a hash or verify did not happen. Its text never includes the password. */
export class HashError extends Error {
  override readonly name = 'HashError';
  /** What failed underneath, from error names, codes and exit codes only. */
  declare readonly reason?: string;

  constructor(
    readonly code: HashErrorCode,
    reason?: string,
  ) {
    super(reason ? `${MESSAGES[code]} (${reason})` : MESSAGES[code]);
    if (reason) Object.defineProperty(this, 'reason', { value: reason, enumerable: true });
  }
}

const CODES: Record<PoolError['kind'], HashErrorCode> = {
  failed: 'ERR_PASSWORD_HASH_FAILED',
  timeout: 'ERR_PASSWORD_HASH_TIMEOUT',
  closed: 'ERR_PASSWORD_HASHER_CLOSED',
  'queue-full': 'ERR_PASSWORD_HASH_QUEUE_FULL',
};
const fromPool = (error: unknown) =>
  error instanceof PoolError ? new HashError(CODES[error.kind], error.reason) : new HashError('ERR_PASSWORD_HASH_FAILED');

export interface PasswordHasherOptions {
  /**
   * Worker threads. Default 1: on the 2-core machine the event loop needs a
   * core of its own. One thread does ~500 hashes/s; in the service under the
   * accept load (new password per request) 1 thread gave 314–525 req/s with
   * /status p99 ~28 ms, 2 threads 275–661 req/s with ~80 ms (bench/README.md).
   */
  threads?: number;
  /** A hash or verify running longer than this is stopped (its thread replaced) and rejected. Default 10,000 ms. */
  timeoutMs?: number;
  /** Reject new hashes at once while this many wait for a thread. Default: no limit. */
  maxQueue?: number;
  /** Told when a worker dies while running nothing (it is replaced when needed). Default: ignored. */
  onError?: (error: HashError) => void;
  /** The task module the threads run (tests put failing ones here). Default: ./worker.js next to this module. */
  workerUrl?: URL;
}

// Running from src/ (tests), the worker is worker.ts, loaded with the same loader.
const WORKER = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);

const utf8 = new TextEncoder();

export class PasswordHasher {
  private readonly pool: WorkerPool;
  /** Keys the in-flight map; never leaves this process and protects nothing once the map is empty. */
  private readonly key = randomBytes(32);
  private readonly inFlight = new Map<string, Promise<string>>();
  private closed = false;

  constructor(options: PasswordHasherOptions = {}) {
    const onError = options.onError ?? (() => {});
    this.pool = new WorkerPool({
      module: options.workerUrl ?? WORKER,
      threads: Math.max(1, Math.min(Math.trunc(options.threads ?? 1), availableParallelism() * 2)),
      timeoutMs: options.timeoutMs ?? 10_000,
      maxQueue: options.maxQueue ?? Infinity,
      onError: (error) => onError(fromPool(error)),
    });
  }

  /**
   * The SHA-512-crypt hash (`$6$`, random salt, 5,000 rounds) of `password`,
   * computed on a worker thread. Identical requests in flight at the same
   * time share one hash (and so one salt); `username` only tells them apart.
   */
  hash(username: string, password: string): Promise<string> {
    if (this.closed) return Promise.reject(new HashError('ERR_PASSWORD_HASHER_CLOSED'));
    // A non-string would end up quoted in a TypeError's text.
    if (typeof username !== 'string' || typeof password !== 'string') return Promise.reject(notStrings());
    const id = createHmac('sha256', this.key)
      .update(`${Buffer.byteLength(username)}:`)
      .update(username)
      .update(password)
      .digest('base64');
    const shared = this.inFlight.get(id);
    if (shared) return shared;
    const hashing = (async () => {
      try {
        return (await this.run({ op: 'hash', password: utf8.encode(password) })) as string;
      } finally {
        this.inFlight.delete(id);
      }
    })();
    this.inFlight.set(id, hashing);
    return hashing;
  }

  /**
   * Whether `password` matches `hash` (a `$6$` string), on a worker thread,
   * compared in constant time. False for anything that is not a `$6$` hash.
   */
  async verify(password: string, hash: string): Promise<boolean> {
    if (this.closed) throw new HashError('ERR_PASSWORD_HASHER_CLOSED');
    if (typeof password !== 'string') throw notStrings();
    if (!parseSha512Crypt(hash)) return false;
    return (await this.run({ op: 'verify', password: utf8.encode(password), hash })) as boolean;
  }

  /** Which implementation the workers hash with ('wasm' unless the kernel is not built). Starts the threads. */
  async implementation(): Promise<Implementation> {
    if (this.closed) throw new HashError('ERR_PASSWORD_HASHER_CLOSED');
    return (await this.run({ op: 'implementation' })) as Implementation;
  }

  /**
   * Refuses new calls, lets hashes already asked for finish (at most 5 s),
   * then stops every thread. Resolves when none is left. Idempotent.
   */
  close(): Promise<void> {
    this.closed = true;
    return this.pool.close();
  }

  private async run(task: HashTask): Promise<unknown> {
    try {
      return await this.pool.run(task);
    } catch (error) {
      throw fromPool(error);
    } finally {
      // The worker got (and wiped) a copy; this one is wiped once the answer is in.
      if ('password' in task) task.password.fill(0);
    }
  }
}

const notStrings = () => new HashError('ERR_PASSWORD_HASH_FAILED', 'username and password must be strings');
