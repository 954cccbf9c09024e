// The store: what the engine needs of the durable half, as one narrow
// interface (sqlite-store.ts implements it on the SQLite file; a PostgreSQL
// store is to implement the same). The `tasks` table is the queue: there is
// no other record of waiting work.
//
// Contract of every implementation:
// - A state change is one method: `add`, `claim`, `finish`, `requeue`,
//   `cancelQueued`. Each writes the task rows and one `status` event per
//   changed task in ONE transaction, and resolves only once it has
//   committed. Then, before it resolves, it hands each change to the one
//   hook it was built with (`onChange`): the service tells the event
//   streams, the waiters, the scheduler, the instance listing and the log
//   from there, and nowhere else.
// - Guards are in the write, not in the caller: a change applies only to a
//   task in the state it leaves (`finish` only to a queued or running task,
//   `requeue` only to a running one, …); a change that did not apply is
//   reported as such (undefined, or left out of the list) and fires nothing.
//   Two concurrent writers therefore never both move one task.
// - Rules that decide a state are written once, in the write: which tasks a
//   claim takes (oldest first, one delete per IP, none for an IP a running
//   delete holds); which task a cancel ends at once (one that never ran, or
//   any queued delete); which one records a cancel instead (a create:
//   `requestCancel`); that a delete is never canceled once running.
// - Every method is async, reads and the run's bookkeeping (runner, progress,
//   log) too: SQLite answers in-process (its promises are already settled),
//   PostgreSQL over a socket (pg-store.ts). Callers never rely on a read
//   being synchronous.
// - A row that does not hold what it should (broken JSON) is read as far as
//   it can be: bad progress reads as null, bad params as undefined (and the
//   task then fails alone, docs/task-lifecycle.md "Damaged rows").
import type { CappedText } from '../ansible/output.js';
import { DEFAULT_OWNER } from '../config.js';
import type { TaskEvent } from './events.js';
import type { Outcome, Progress, Task, TaskAction, TaskFilter, TaskReason } from './model.js';

/**
 * A live idempotency key that another node wrote after this one looked it
 * up: nothing was stored, and the request is a replay of that key's task.
 */
export class KeyTaken extends Error {
  override name = 'KeyTaken';
  constructor(
    readonly owner: string,
    readonly key: string,
  ) {
    super('the idempotency key was taken by a concurrent request');
  }
}

export interface NewTask {
  id: string;
  action: TaskAction;
  params: object;
  /** The public IP a delete targets (creates learn theirs when they succeed). */
  ip?: string | null;
  /** The name of the token that asked for it (default: the default owner's). */
  created_by?: string;
  /** Set when the service queues it itself (an expiry). */
  reason?: TaskReason | null;
  /** A create's expiry, as an ISO time. */
  expires_at?: string | null;
  /**
   * For a delete an expiry queued: the create whose expiry it is. Marked
   * handled in the same transaction (a crash can then neither lose nor
   * repeat it); when it already was, nothing is written and add throws.
   */
  expiryOf?: string;
  /** Stored already ended, never to run (a delete of an IP none of the asker's instances has). */
  ended?: Outcome & { status: 'failed' };
}

// --- Reading and writing rows, the same in both implementations. ---

/** JSON as stored; undefined when it does not parse (a damaged row). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0;

/** Progress as stored, when it has the shape written: anything else (a damaged row) reads as none. */
export function readProgress(text: string | null): Progress | null {
  if (text === null) return null;
  const value = parseJson(text) as Partial<Progress> | undefined;
  if (!value || typeof value !== 'object' || !isCount(value.step) || !isCount(value.of) || typeof value.name !== 'string') return null;
  return { step: value.step, of: value.of, name: value.name };
}

/** What a succeeded task's progress says: the run is done (its last step of as many as there were). */
export function doneProgress(last: Progress | null): Progress {
  const of = last?.of || 1;
  return { step: of, of, name: 'done' };
}

/** Who asked for a new task, why, and until when its instance lives, as both stores write them. */
export function ownershipOf(task: NewTask): Pick<Task, 'created_by' | 'reason' | 'expires_at'> {
  return { created_by: task.created_by ?? DEFAULT_OWNER, reason: task.reason ?? null, expires_at: task.expires_at ?? null };
}

/** A task as a store has just inserted it, queued (the accept hot path: no read back). */
export function newlyQueued(task: NewTask, created_at: string): Task {
  return {
    id: task.id,
    action: task.action,
    status: 'queued',
    ip: task.ip ?? null,
    instance_id: null,
    instance_state: null,
    error: null,
    progress: null,
    attempts: 0,
    cancel_requested: false,
    runner_pid: null,
    runner_start: null,
    ...ownershipOf(task),
    created_at,
    started_at: null,
    finished_at: null,
  };
}

export interface IdempotencyKey {
  /** Keys are kept per owner: another token's same key is another key. */
  owner: string;
  key: string;
  request_hash: string;
  ttlSeconds: number;
}

export interface IdempotencyRecord {
  key: string;
  request_hash: string;
  task_id: string;
}

/** A claimed task with its parameters as stored: `unknown` until they are checked. */
export interface ClaimedRow {
  task: Task;
  params: unknown;
}

/** A run's output as one of its tasks' log. */
export interface RunLog {
  runId: string;
  log: CappedText;
}

/** One committed state change: the task as it now stands, and the status event written with it. */
export interface StateChange {
  task: Task;
  event: TaskEvent;
}

export interface TaskStore {
  // --- State changes: row + status event in one transaction, then the hook. ---

  /**
   * — → queued (with its idempotency key, when given), or straight to its
   * end for a task stored `ended`; an expiry's delete marks its expiry
   * handled in the same transaction (`expiryOf`).
   */
  add(task: NewTask, key?: IdempotencyKey): Promise<Task>;
  /** queued → running for up to `limit` tasks under `batchId`; how many were claimed. */
  claim(batchId: string, limit: number): Promise<number>;
  /**
   * queued/running → a terminal state; undefined when it had already ended.
   * `log`: the run that ended it, still going (a result that came early):
   * the task points to that run's log, whose output so far is stored only
   * if nothing of the run is yet (setLog stores the whole when it ends).
   */
  finish(id: string, outcome: Outcome, log?: RunLog): Promise<Task | undefined>;
  /** running → queued; `refund` gives back the attempt (the run was stopped on purpose). The tasks it moved. */
  requeue(ids: string[], refund: boolean): Promise<Task[]>;
  /** queued → canceled, for a task with nothing to clean up; undefined otherwise. */
  cancelQueued(id: string): Promise<Task | undefined>;
  /**
   * Records that a create is to be canceled (the one place cancel state
   * lives: it survives a crash); its next run is the clean-up. No status
   * changes, so no event. False when it has ended, or is a delete.
   */
  requestCancel(id: string): Promise<boolean>;

  // --- A run's bookkeeping: no status change. ---

  /** The ansible-playbook process running these tasks (null when none). */
  setRunner(ids: string[], pid: number | null, start: string | null): Promise<void>;
  /** The playbook step the running ones are at. */
  setProgress(ids: string[], progress: Progress): Promise<void>;
  /** The whole output of run `runId`, once it has ended, as the log of `ids`: stored once, however many tasks it ran. */
  setLog(runId: string, ids: string[], log: CappedText): Promise<void>;

  // --- What is kept, and for how long (housekeeping.ts). ---

  /** Drops idempotency keys past their expiry, and the password hashes of ended tasks only they kept; how many keys. */
  purgeExpiredKeys(): Promise<number>;
  /**
   * Deletes up to `limit` tasks that ended before `cutoff` (ISO time), with
   * their events and their runs' logs once no task points to them; never a
   * queued or running task, nor one an idempotency key points to. How many.
   */
  purgeEnded(cutoff: string, limit: number): Promise<number>;

  // --- Reads. ---

  /** Tasks waiting for a run: the one count of waiting work (admission, metrics, the scheduler's start). */
  waiting(): Promise<number>;
  get(id: string): Promise<Task | undefined>;
  /** Newest first, with the filters of GET /tasks. */
  list(filter: TaskFilter): Promise<Task[]>;
  /** The stored parameters of a task, parsed but not checked (undefined when unreadable). */
  paramsOf(id: string): Promise<unknown>;
  getLog(id: string): Promise<CappedText | undefined>;
  /** Queued and running tasks, oldest first (recovery). */
  unfinished(): Promise<Task[]>;
  /** The running tasks of a batch, with their stored parameters. */
  batch(batchId: string): Promise<ClaimedRow[]>;
  /** The live key `key` of `owner` (keys are per owner). */
  findKey(owner: string, key: string): Promise<IdempotencyRecord | undefined>;
  /** Task counts by action and status (metrics). */
  countByStatus(): Promise<{ action: string; status: string; count: number }[]>;
  /** Throws when the database cannot answer a trivial query (readiness). */
  ping(): Promise<void>;
}
