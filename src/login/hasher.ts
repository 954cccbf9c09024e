// Password hashing for the service, off the event loop: SHA-512-crypt runs on
// a small pool of worker threads (piscina) running the WebAssembly kernel
// (~2 ms of CPU a hash; bench/hash.mjs). Nothing starts on import or in the
// constructor: the pool starts with the first hash and stops at close().
//
// What stays in memory, and for how long:
// - The password goes to a worker as UTF-8 bytes in a buffer of its own,
//   transferred (moved, not copied); the worker wipes it, and the kernel
//   wipes everything it derived from it, before answering.
// - No hash is reused across requests. Concurrent identical requests (same
//   username and password while the first is still hashing) share the one
//   hash in flight: the entry, keyed by an HMAC under a per-process random
//   key, is dropped the moment that hash is done, so nothing a password could
//   be checked against stays behind once the requests are answered. (A cache
//   of recent hashes would have to keep such a key – an HMAC of the password
//   is checked against at the cost of one HMAC, where the crypt hash costs
//   5,000 SHA-512s – for as long as it caches.)
// - Errors never carry a password: whatever fails in a worker is reported as
//   a HashError with a fixed message and the original error's name and code.
import { createHmac, randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { parseSha512Crypt } from './format.js';
import type { Implementation } from './sha512-crypt.js';
import type { HashTask } from './worker.js';

export type HashErrorCode =
  | 'ERR_PASSWORD_HASHER_CLOSED' // close() was called
  | 'ERR_PASSWORD_HASH_TIMEOUT' // no answer within `timeoutMs` (the worker was stopped)
  | 'ERR_PASSWORD_HASH_QUEUE_FULL' // more than `maxQueue` hashes waiting
  | 'ERR_PASSWORD_HASH_FAILED'; // the worker failed (threw, crashed, could not start)

/** Why a hash or verify did not happen. Its text never includes the password. */
export class HashError extends Error {
  override readonly name = 'HashError';
  /** The name and code of the underlying error, when there was one (never its message, but for piscina's own). */
  declare readonly reason?: string;

  constructor(
    readonly code: HashErrorCode,
    message: string,
    reason?: string,
  ) {
    super(reason ? `${message} (${reason})` : message);
    if (reason) this.reason = reason;
  }
}

export interface PasswordHasherOptions {
  /**
   * Worker threads. Default 1: on a small machine the event loop needs a
   * core of its own (bench/README.md, "hash"). Each thread is ~2 ms a hash.
   */
  threads?: number;
  /** Reject a hash or verify not answered within this many ms, stopping its worker. Default 30,000. */
  timeoutMs?: number;
  /** Reject new hashes while this many wait for a thread. Default: no limit. */
  maxQueue?: number;
  /** Told about pool errors outside any task (e.g. a worker dying while idle). Default: ignored. */
  onError?: (error: HashError) => void;
  /** The worker module (tests put a failing one here). Default: ./worker.js next to this module. */
  workerUrl?: URL;
}

// Running from src/ (tests), the worker is worker.ts, loaded with the same loader.
const WORKER = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);

const utf8 = new TextEncoder();

// Messages of piscina's own that carry no data of ours: these may be shown.
const POOL_MESSAGES = /^(worker exited with code: -?\d+|Terminating worker thread|Close operation timed out)$/;

/** An error from the pool or a worker, as one that cannot carry a password. */
function sanitize(error: unknown, signal: AbortSignal | undefined): HashError {
  if (error instanceof HashError) return error;
  if (signal?.aborted) return new HashError('ERR_PASSWORD_HASH_TIMEOUT', 'password hashing timed out');
  const { name, code, message } = (error ?? {}) as { name?: unknown; code?: unknown; message?: unknown };
  if (name === 'AbortError') return new HashError('ERR_PASSWORD_HASHER_CLOSED', 'the password hasher is closed');
  const safe = (part: unknown) => typeof part === 'string' && /^[\w.-]{1,64}$/.test(part);
  const reason = [name, code].filter(safe);
  if (typeof message === 'string' && POOL_MESSAGES.test(message)) reason.push(message);
  return new HashError('ERR_PASSWORD_HASH_FAILED', 'password hashing failed', reason.join(': ') || undefined);
}

export class PasswordHasher {
  private readonly threads: number;
  private readonly timeoutMs: number;
  private readonly maxQueue: number;
  private readonly onError: (error: HashError) => void;
  private readonly workerUrl: URL;
  /** Keys the in-flight map; never leaves this process and protects nothing once the map is empty. */
  private readonly key = randomBytes(32);
  private readonly inFlight = new Map<string, Promise<string>>();
  private pool: Piscina | undefined;
  private closing: Promise<void> | undefined;
  /** Tasks sent to the pool, with when they are due (one timer for all, not one per task). */
  private readonly pending = new Map<AbortController, number>();
  private watchdog: NodeJS.Timeout | undefined;

  constructor(options: PasswordHasherOptions = {}) {
    this.threads = Math.max(1, Math.min(Math.trunc(options.threads ?? 1), availableParallelism() * 2));
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxQueue = options.maxQueue ?? Infinity;
    this.onError = options.onError ?? (() => {});
    this.workerUrl = options.workerUrl ?? WORKER;
  }

  /**
   * The SHA-512-crypt hash (`$6$`, random salt, 5,000 rounds) of `password`,
   * computed on a worker thread. Identical requests in flight at the same
   * time share one hash (and so one salt); `username` only tells them apart.
   */
  hash(username: string, password: string): Promise<string> {
    if (this.closing) return Promise.reject(closedError());
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
        const bytes = utf8.encode(password);
        return (await this.run({ op: 'hash', password: bytes }, bytes)) as string;
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
    if (this.closing) throw closedError();
    if (typeof password !== 'string') throw notStrings();
    if (!parseSha512Crypt(hash)) return false;
    const bytes = utf8.encode(password);
    return (await this.run({ op: 'verify', password: bytes, hash }, bytes)) as boolean;
  }

  /** Which implementation the workers hash with ('wasm' unless the kernel is not built); starts the pool. */
  async implementation(): Promise<Implementation> {
    if (this.closing) throw closedError();
    return (await this.run({ op: 'implementation' })) as Implementation;
  }

  /** Stops the worker threads; hashes still waiting are rejected. Later calls reject. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const pool = this.pool;
      this.pool = undefined;
      // Running hashes finish (milliseconds); queued ones are rejected.
      if (pool) await pool.close({ force: true });
    })();
    return this.closing;
  }

  private start(): Piscina {
    const pool = new Piscina({
      filename: this.workerUrl.href,
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: Infinity,
      closeTimeout: 5_000,
      recordTiming: false,
    });
    // An 'error' event without a listener would throw and end the process.
    pool.on('error', (error: unknown) => this.onError(sanitize(error, undefined)));
    return pool;
  }

  private async run(task: HashTask, password?: Uint8Array): Promise<unknown> {
    this.pool ??= this.start();
    const pool = this.pool;
    if (pool.queueSize >= this.maxQueue) {
      wipe(password);
      throw new HashError('ERR_PASSWORD_HASH_QUEUE_FULL', 'too many passwords waiting to be hashed');
    }
    const timeout = new AbortController();
    this.pending.set(timeout, performance.now() + this.timeoutMs);
    this.watch();
    try {
      return await pool.run(task, { signal: timeout.signal, ...(password ? { transferList: [password.buffer as ArrayBuffer] } : {}) });
    } catch (error) {
      wipe(password); // still ours if it never reached a worker
      throw this.closing ? closedError() : sanitize(error, timeout.signal);
    } finally {
      this.pending.delete(timeout);
    }
  }

  /** Aborts (piscina then stops the worker) what is overdue; runs only while tasks are pending. */
  private watch() {
    if (this.watchdog) return;
    const every = Math.max(10, Math.min(1000, this.timeoutMs / 4));
    this.watchdog = setInterval(() => {
      const now = performance.now();
      for (const [timeout, due] of this.pending) if (due <= now) timeout.abort();
      if (this.pending.size === 0) {
        clearInterval(this.watchdog);
        this.watchdog = undefined;
      }
    }, every).unref();
  }
}

/** Zeroes bytes still ours (a buffer transferred to a worker is detached: nothing left here). */
function wipe(bytes: Uint8Array | undefined) {
  if (bytes && bytes.byteLength > 0) bytes.fill(0);
}

const closedError = () => new HashError('ERR_PASSWORD_HASHER_CLOSED', 'the password hasher is closed');
const notStrings = () => new HashError('ERR_PASSWORD_HASH_FAILED', 'username and password must be strings');
