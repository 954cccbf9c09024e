// A small fixed pool of worker threads (node:worker_threads) for
// PasswordHasher. Our own rather than piscina: measured here with 16 clients
// on one thread, piscina's bookkeeping cost the event loop 0.23–0.53 ms of
// CPU per task against 0.12–0.21 for this pool (alternating runs; a bare
// postMessage pool 0.07–0.21), on a machine where the event loop has one core.
//
// Each thread holds two tasks: the one it runs and the next, so that it starts
// the next one without waiting for the main thread to hear of the first
// (+14% hashes/s on one thread here). Tasks are cloned to the thread, not
// transferred, so that the caller keeps its copy (and wipes it when settled)
// and a task waiting in a thread that dies can go back in the queue. Answers
// settle in setImmediate (see the 'message' handler).
//
// What it promises: every run() settles. A task that throws rejects; a worker
// that dies rejects the task it was running and is replaced (the task waiting
// behind it is queued again); one that overruns `timeoutMs` is terminated and
// its task rejected; a worker that dies before its task module has loaded
// rejects everything waiting, and the next run() tries afresh. Errors are
// PoolErrors built here from error names, codes and exit codes (thread.ts
// sends no more), never from an error's message.
import { Worker } from 'node:worker_threads';

/** How much longer than `timeoutMs` a job may wait for its thread to start. */
const BOOT_ALLOWANCE_MS = 60_000;

export type PoolErrorKind = 'failed' | 'timeout' | 'closed' | 'queue-full';

export class PoolError extends Error {
  override readonly name = 'PoolError';
  constructor(
    readonly kind: PoolErrorKind,
    /** What failed, from names and codes only: never from an error's message. */
    readonly reason?: string,
  ) {
    super(kind);
  }
}

export interface PoolOptions {
  /** The task module: its default export runs each task, in a worker thread. */
  module: URL;
  threads: number;
  /** A running task taking longer than this is stopped (its thread terminated) and rejected. */
  timeoutMs: number;
  /** More tasks than this waiting for a thread: run() rejects at once. */
  maxQueue: number;
  /** Called when a worker dies while no task is running on it. */
  onError: (error: PoolError) => void;
}

interface Job {
  id: number;
  task: unknown;
  resolve: (value: unknown) => void;
  reject: (error: PoolError) => void;
  /** When its thread started it (about): due at started + timeoutMs. */
  started?: number;
  timedOut?: boolean;
}

/** Tasks a thread holds: the one it runs, and the next. */
const DEPTH = 2;

interface Thread {
  worker: Worker;
  /** In the order sent: the first is running. */
  jobs: Job[];
  /** Its task module loaded: a death afterwards is not a failure to start. */
  ready: boolean;
  /** Name/code of an uncaught error in the thread, reported with its exit. */
  crash?: string;
}

// Running from src/ (tests), the thread script is thread.ts, run through the same loader.
const THREAD = new URL(import.meta.url.endsWith('.ts') ? './thread.ts' : './thread.js', import.meta.url);

const nameAndCode = (error: unknown) => {
  const { name, code } = (error ?? {}) as { name?: unknown; code?: unknown };
  return [name, code].filter((part) => typeof part === 'string' && /^[\w.-]{1,64}$/.test(part)).join(' ') || undefined;
};

export class WorkerPool {
  private readonly threads = new Set<Thread>();
  private readonly queue: Job[] = [];
  private nextId = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  constructor(private readonly options: PoolOptions) {}

  /** Runs `task` (cloned to a thread: the caller's copy stays the caller's) on a thread. */
  run(task: unknown): Promise<unknown> {
    if (this.closed) return Promise.reject(new PoolError('closed'));
    if (this.queue.length >= this.options.maxQueue) return Promise.reject(new PoolError('queue-full'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, task, resolve, reject });
      while (this.threads.size < this.options.threads) this.spawn();
      this.dispatch();
    });
  }

  /**
   * Refuses new tasks, lets running and waiting ones finish (for at most
   * `graceMs`), then stops every thread; resolves when they are all gone.
   */
  close(graceMs = 5000): Promise<void> {
    this.closed = true;
    this.closing ??= (async () => {
      if (this.busy()) {
        await new Promise<void>((resolve) => {
          this.drained = resolve;
          setTimeout(resolve, graceMs).unref();
        });
      }
      for (const job of this.queue.splice(0)) job.reject(new PoolError('closed'));
      // terminate() rejects what still runs (through 'exit'); wait until every thread is gone.
      await Promise.all([...this.threads].map((thread) => thread.worker.terminate()));
      clearInterval(this.watchdog);
      this.watchdog = undefined;
    })();
    return this.closing;
  }

  private busy() {
    return this.queue.length > 0 || [...this.threads].some((thread) => thread.jobs.length > 0);
  }

  private spawn(): Thread {
    const worker = new Worker(THREAD, {
      workerData: { module: this.options.module.href },
      // A hashing thread holds a few small buffers: a small young generation keeps the process's memory flat (bench/README.md, Results).
      resourceLimits: { maxYoungGenerationSizeMb: 2 },
    });
    const thread: Thread = { worker, jobs: [], ready: false };
    this.threads.add(thread);
    worker.unref(); // an idle pool does not keep the process alive; a running job does (ref below)
    worker.on('message', (answer: { ready?: true; id: number; ok: boolean; value?: unknown; name?: string; code?: string }) => {
      if (answer.ready) {
        thread.ready = true;
        // The job's time counts from now: the thread's start (loading its module) is not the job's.
        if (thread.jobs[0]) thread.jobs[0].started = performance.now();
        return;
      }
      const job = thread.jobs[0];
      if (!job || answer.id !== job.id) return; // not ours (cannot happen: answers come in order)
      thread.jobs.shift();
      if (thread.jobs[0]) thread.jobs[0].started = performance.now();
      else worker.unref();
      this.dispatch(); // the thread's next job first: it works while we go on
      // Settle in the check phase, not here: Node hands a port's messages over
      // back to back (up to 1,000 at a time) while they keep coming, and work
      // chained on each answer would keep timers and I/O waiting all along.
      setImmediate(() => {
        if (answer.ok) job.resolve(answer.value);
        else job.reject(new PoolError('failed', [answer.name, answer.code].filter(Boolean).join(' ') || undefined));
      });
    });
    worker.on('error', (error) => {
      thread.crash = nameAndCode(error) ?? 'uncaught error';
    });
    worker.on('exit', (code) => {
      this.threads.delete(thread);
      const [job, ...next] = thread.jobs.splice(0);
      const reason = `${thread.crash ? `${thread.crash}, ` : ''}worker exited with code ${code}`;
      if (job) job.reject(job.timedOut ? new PoolError('timeout') : new PoolError(this.closed ? 'closed' : 'failed', reason));
      else if (!this.closed) this.options.onError(new PoolError('failed', reason));
      this.queue.unshift(...next); // never started: first in line again
      if (!thread.ready && !job?.timedOut) {
        // Its module did not load: what waits would fail the same way. The next run() tries afresh.
        for (const waiting of this.queue.splice(0)) waiting.reject(new PoolError('failed', reason));
      } else if (this.closed) {
        for (const waiting of this.queue.splice(0)) waiting.reject(new PoolError('closed'));
      } else if (this.queue.length > 0) {
        this.spawn();
        this.dispatch();
      }
      this.settleClose();
    });
    return thread;
  }

  private dispatch() {
    // Each thread's running slot first, then its waiting slot: two idle threads share the work.
    for (let depth = 0; depth < DEPTH; depth++) {
      for (const thread of this.threads) {
        if (this.queue.length === 0) break;
        if (thread.jobs.length !== depth) continue;
        const job = this.queue.shift()!;
        try {
          thread.worker.postMessage({ id: job.id, task: job.task });
        } catch (error) {
          job.reject(new PoolError('failed', nameAndCode(error)));
          continue;
        }
        thread.jobs.push(job);
        // On a thread still starting, the job's clock starts when the thread is ready (above); until then a start
        // that hangs is bounded by BOOT_ALLOWANCE_MS more (a busy machine took over 10 s to start one).
        if (depth === 0) job.started = performance.now() + (thread.ready ? 0 : BOOT_ALLOWANCE_MS);
        thread.worker.ref();
        this.watch();
      }
    }
    this.settleClose();
  }

  private settleClose() {
    if (this.drained && !this.busy()) {
      this.drained();
      this.drained = undefined;
    }
  }

  /** One timer for all running jobs (not one per job), running only while there are any. */
  private watch() {
    if (this.watchdog) return;
    const every = Math.max(10, Math.min(1000, this.options.timeoutMs / 4));
    this.watchdog = setInterval(() => {
      const now = performance.now();
      let running = 0;
      for (const thread of this.threads) {
        const job = thread.jobs[0];
        if (!job) continue;
        running++;
        if (!job.timedOut && now - job.started! >= this.options.timeoutMs) {
          job.timedOut = true;
          void thread.worker.terminate();
        }
      }
      if (running === 0) {
        clearInterval(this.watchdog);
        this.watchdog = undefined;
      }
    }, every).unref();
  }
}
