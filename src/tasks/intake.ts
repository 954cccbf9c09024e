// Intake: what a request must pass before it becomes a task — the checks the
// HTTP schema cannot make (system accounts), admission (not shutting down,
// queue not full), and idempotency (a repeated key returns the first task,
// never a second one) — and then the one durable write that queues it. The
// plaintext password goes no further than here: only its hash is stored.
import { createHash } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { HashError, type PasswordHasher } from '../login/hasher.js';
import { decodeParams, type Task } from './model.js';
import { Refusal, shuttingDown } from './refusal.js';
import type { NewTask, TaskStore } from './store.js';

export interface Submitted {
  task: Task;
  /** True when an Idempotency-Key matched an earlier request: no new task. */
  replayed: boolean;
}

export interface IntakeOptions {
  maxQueued: number;
  idempotencyTtl: number;
  systemAccounts: ReadonlySet<string>;
}

const KEY_CONFLICT = 'this Idempotency-Key was used with a different request body; use a new key';

export class Intake {
  private accepting = false;
  /** Tasks admitted whose commit is still pending: they count against EC2_API_MAX_QUEUED too. */
  private pending = 0;
  /** Idempotency keys whose first request is still being hashed or committed. */
  private readonly inFlight = new Map<string, Promise<{ submitted: Submitted; requestHash: string }>>();

  constructor(
    private readonly store: TaskStore,
    private readonly hasher: PasswordHasher,
    private readonly options: IntakeOptions,
  ) {}

  get isAccepting(): boolean {
    return this.accepting;
  }

  open(): void {
    this.accepting = true;
  }

  /** From now on every new task is refused (shutdown). */
  close(): void {
    this.accepting = false;
  }

  /** Throws the refusal a new task would get now; cheap, so it runs before any costly work. */
  assertCanAccept(): void {
    if (!this.accepting) throw shuttingDown();
    const waiting = this.store.waiting + this.pending;
    if (waiting >= this.options.maxQueued) {
      throw new Refusal('queue_full', `${waiting} tasks are waiting (EC2_API_MAX_QUEUED); retry later`);
    }
  }

  /** Queues a create. Resolves once the task row is committed; the password is hashed off the event loop. */
  async create(login: { username: string; password: string }, key?: string): Promise<Submitted> {
    if (this.options.systemAccounts.has(login.username)) {
      throw new Refusal('invalid', `username "${login.username}" is a system account on the instance; choose another name`, 'username');
    }
    this.assertCanAccept();
    if (!key) return this.submit(await this.newCreate(login));

    const requestHash = hashRequest('create', login.username);
    const first = this.inFlight.get(key);
    if (first) {
      // The same key twice at once: the second waits for the first, then replays it.
      const earlier = await first.catch(() => undefined);
      if (earlier) return this.replayOf(earlier.submitted.task, earlier.requestHash, requestHash, login.password);
    }
    const record = this.store.findKey(key);
    if (record) {
      const task = this.store.get(record.task_id);
      if (!task) throw new Refusal('key_conflict', KEY_CONFLICT, 'idempotency-key');
      return this.replayOf(task, record.request_hash, requestHash, login.password);
    }
    const submitting = this.newCreate(login).then((task) => this.submit(task, { key, request_hash: requestHash }));
    const entry = submitting.then((submitted) => ({ submitted, requestHash }));
    // Whoever waits on the entry handles its failure; this one only keeps it from being "unhandled".
    entry.catch(() => undefined);
    this.inFlight.set(key, entry);
    try {
      return await submitting;
    } finally {
      if (this.inFlight.get(key) === entry) this.inFlight.delete(key);
    }
  }

  /** Queues a delete of the managed instance with this public IP. Resolves once it is committed. */
  async delete(ip: string): Promise<Submitted> {
    this.assertCanAccept();
    return this.submit({ id: uuidv7(), action: 'delete', params: { ip }, ip });
  }

  private async newCreate(login: { username: string; password: string }): Promise<NewTask> {
    const password_hash = await this.hasher.hash(login.username, login.password).catch((error: unknown) => {
      throw hashRefusal(error);
    });
    return { id: uuidv7(), action: 'create', params: { username: login.username, password_hash } };
  }

  private async submit(task: NewTask, key?: { key: string; request_hash: string }): Promise<Submitted> {
    // Checked again: hashing took time, and the service may have begun to stop.
    this.assertCanAccept();
    this.pending++;
    try {
      // Committed with its `queued` event; the store's hook tells the scheduler and the event streams.
      return { task: await this.store.add(task, key && { ...key, ttlSeconds: this.options.idempotencyTtl }), replayed: false };
    } finally {
      this.pending--;
    }
  }

  /** The earlier task, when this request is the same one again (same username and password); else a conflict. */
  private async replayOf(task: Task, storedHash: string, requestHash: string, password: string): Promise<Submitted> {
    const stored = decodeParams(task.action, this.store.paramsOf(task.id));
    const same =
      storedHash === requestHash &&
      stored?.action === 'create' &&
      (await this.hasher.verify(password, stored.params.password_hash).catch((error: unknown) => {
        throw hashRefusal(error);
      }));
    if (!same) throw new Refusal('key_conflict', KEY_CONFLICT, 'idempotency-key');
    return { task: this.store.get(task.id) ?? task, replayed: true };
  }
}

/** The hasher's own limits, as the refusals a client can act on; anything else stays an internal error. */
function hashRefusal(error: unknown): unknown {
  if (!(error instanceof HashError)) return error;
  if (error.code === 'ERR_PASSWORD_HASH_QUEUE_FULL') return new Refusal('queue_full', 'too many passwords are waiting to be hashed; retry in a moment');
  if (error.code === 'ERR_PASSWORD_HASHER_CLOSED') return shuttingDown();
  return error;
}

function hashRequest(action: string, username: string): string {
  return createHash('sha256').update(JSON.stringify({ action, username })).digest('hex');
}
