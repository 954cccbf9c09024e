// Intake: what a request must pass before it becomes a task — the checks the
// HTTP schema cannot make (system accounts), admission (not shutting down,
// queue not full, EC2_API_MAX_INSTANCES), ownership (a token deletes only its
// own instances), and idempotency (a repeated key returns the first task,
// never a second one; keys are per owner) — and then the one durable write
// that queues it, with its owner and expiry. The plaintext password goes no
// further than here: only its hash is stored.
import { createHash } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { HashError, type PasswordHasher } from '../login/hasher.js';
import type { Lifetimes } from './lifetimes.js';
import { decodeParams, type Owner, type Task } from './model.js';
import { noInstance, Refusal, shuttingDown } from './refusal.js';
import { KeyTaken, type NewTask, type TaskStore } from './store.js';

export interface Submitted {
  task: Task;
  /** True when an Idempotency-Key matched an earlier request: no new task. */
  replayed: boolean;
}

export interface IntakeOptions {
  maxQueued: number;
  idempotencyTtl: number;
  systemAccounts: ReadonlySet<string>;
  /** Seconds a create's instance lives when the create gives no ttl; null: no expiry. */
  defaultTtl: number | null;
  /** Live managed instances plus queued creates allowed at once; null: no cap. */
  maxInstances: number | null;
}

/** What a create asks for besides the login: who asks, and how long the instance may live. */
export interface CreateRequest {
  owner: Owner;
  /** Seconds from now; the default TTL when absent. */
  ttl?: number;
  idempotencyKey?: string;
}

const KEY_CONFLICT = 'this Idempotency-Key was used with a different request body; use a new key';

/** A request with an idempotency key, as the next one with that key sees it: the task it names, and the hash of the request that made it. */
interface KeyedRequest {
  task: Task;
  requestHash: string;
  /** Set when this request queued the task (else it found the key, and is a replay). */
  submitted?: Submitted;
}

export class Intake {
  private accepting = false;
  /** Tasks admitted whose commit is still pending: they count against EC2_API_MAX_QUEUED too. */
  private pending = 0;
  /** Of those, creates: they count against EC2_API_MAX_INSTANCES too. */
  private pendingCreates = 0;
  /** Idempotency keys whose first request is still being hashed or committed. */
  /** The admission step under way (checks and counts, one request at a time). */
  private admitting: Promise<unknown> = Promise.resolve();
  private readonly inFlight = new Map<string, Promise<KeyedRequest>>();

  constructor(
    private readonly store: TaskStore,
    private readonly lifetimes: Lifetimes,
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

  /** Runs `step` after the admission steps before it have settled; its own outcome. */
  private oneAtATime(step: () => Promise<void>): Promise<void> {
    const run = this.admitting.then(step);
    this.admitting = run.catch(() => undefined);
    return run;
  }

  /** Throws the refusal a new task would get now; cheap, so it runs before any costly work. */
  async assertCanAccept(): Promise<void> {
    if (!this.accepting) throw shuttingDown();
    const waiting = (await this.store.waiting()) + this.pending;
    if (waiting >= this.options.maxQueued) {
      throw new Refusal('queue_full', `${waiting} tasks are waiting (EC2_API_MAX_QUEUED); retry later`);
    }
  }

  /** Refuses a create that would take the live instances and queued creates past EC2_API_MAX_INSTANCES. */
  private async assertRoomForCreate(): Promise<void> {
    const max = this.options.maxInstances;
    if (max === null) return;
    const taken = (await this.lifetimes.countInstances()) + this.pendingCreates;
    if (taken >= max) {
      throw new Refusal(
        'conflict',
        `the instance cap is reached: ${taken} managed instances are live or queued to launch, and EC2_API_MAX_INSTANCES is ${max}; ` +
          'delete one (DELETE /instances/<ip>) or wait for one to expire, then try again',
      );
    }
  }

  /** Queues a create. Resolves once the task row is committed; the password is hashed off the event loop. */
  async create(login: { username: string; password: string }, request: CreateRequest): Promise<Submitted> {
    if (this.options.systemAccounts.has(login.username)) {
      throw new Refusal('invalid', `username "${login.username}" is a system account on the instance; choose another name`, 'username');
    }
    await this.assertCanAccept();
    const { owner, idempotencyKey } = request;
    const ttl = request.ttl ?? this.options.defaultTtl;
    // The expiry counts from acceptance; a replay keeps the first request's.
    const fresh = async (key?: { key: string; request_hash: string }) => {
      // Checked before the costly hash, and again at the commit (submit).
      await this.assertRoomForCreate();
      return this.submit(await this.newCreate(login, owner.name, ttl), key && { ...key, owner: owner.name });
    };
    if (!idempotencyKey) return fresh();

    // Keys are per owner: the same key from two tokens is two keys.
    const key = `${owner.name}\n${idempotencyKey}`;
    const requestHash = hashRequest('create', login.username, request.ttl);
    const first = this.inFlight.get(key);
    if (first) {
      // The same key twice at once: the second waits for the first, then replays it.
      const earlier = await first.catch(() => undefined);
      if (earlier) return this.replayOf(earlier.task, earlier.requestHash, requestHash, login.password);
    }
    // In the map before its first await: the store's reads are async, and a second request with this key
    // arriving meanwhile must wait for this one rather than look the key up too and queue a second task.
    const entry = (async (): Promise<KeyedRequest> => {
      const found = async (): Promise<KeyedRequest | undefined> => {
        const record = await this.store.findKey(owner.name, idempotencyKey);
        if (!record) return undefined;
        const task = await this.store.get(record.task_id);
        if (!task) throw new Refusal('key_conflict', KEY_CONFLICT, 'idempotency-key');
        return { task, requestHash: record.request_hash };
      };
      const earlier = await found();
      if (earlier) return earlier;
      try {
        const submitted = await fresh({ key: idempotencyKey, request_hash: requestHash });
        return { task: submitted.task, requestHash, submitted };
      } catch (error) {
        // Another node stored the key since the look-up (nodes sharing PostgreSQL): this request replays its task.
        const taken = error instanceof KeyTaken ? await found() : undefined;
        if (taken) return taken;
        throw error;
      }
    })();
    // Whoever waits on the entry handles its failure; this one only keeps it from being "unhandled".
    entry.catch(() => undefined);
    this.inFlight.set(key, entry);
    try {
      const done = await entry;
      return done.submitted ?? (await this.replayOf(done.task, done.requestHash, requestHash, login.password));
    } finally {
      if (this.inFlight.get(key) === entry) this.inFlight.delete(key);
    }
  }

  /**
   * Queues a delete of the managed instance with this public IP. Resolves
   * once it is committed. A token that is not an admin deletes only an
   * instance its own create launched: for any other IP (another token's, or
   * unknown alike) its delete is stored already failed with `not_found`, as
   * a run would have ended it, and nothing runs.
   */
  async delete(ip: string, owner: Owner): Promise<Submitted> {
    await this.assertCanAccept();
    const mine = owner.admin || (await this.lifetimes.live(ip))?.created_by === owner.name;
    const ended = mine ? undefined : { status: 'failed' as const, instance_state: 'not_found' as const, error: noInstance(ip) };
    return this.submit({ id: uuidv7(), action: 'delete', params: { ip }, ip, created_by: owner.name, ended });
  }

  private async newCreate(login: { username: string; password: string }, createdBy: string, ttl: number | null): Promise<NewTask> {
    const password_hash = await this.hasher.hash(login.username, login.password).catch((error: unknown) => {
      throw hashRefusal(error);
    });
    return {
      id: uuidv7(),
      action: 'create',
      params: { username: login.username, password_hash },
      created_by: createdBy,
      expires_at: ttl === null ? null : new Date(Date.now() + ttl * 1000).toISOString(),
    };
  }

  private async submit(task: NewTask, key?: { owner: string; key: string; request_hash: string }): Promise<Submitted> {
    // Checked again: hashing took time, and the service may have begun to stop (or others filled the cap).
    const create = task.action === 'create';
    // Checked and counted as one step: the checks read the database (async), and two requests checked
    // at once would each miss the other. One at a time, so the cap lets in exactly as many as it allows.
    await this.oneAtATime(async () => {
      await this.assertCanAccept();
      if (create) await this.assertRoomForCreate();
      this.pending++;
      if (create) this.pendingCreates++;
    });
    try {
      // Committed with its `queued` event; the store's hook tells the scheduler and the event streams.
      return { task: await this.store.add(task, key && { ...key, ttlSeconds: this.options.idempotencyTtl }), replayed: false };
    } finally {
      this.pending--;
      if (create) this.pendingCreates--;
    }
  }

  /** The earlier task, when this request is the same one again (same username and password); else a conflict. */
  private async replayOf(task: Task, storedHash: string, requestHash: string, password: string): Promise<Submitted> {
    const stored = decodeParams(task.action, await this.store.paramsOf(task.id));
    const same =
      storedHash === requestHash &&
      stored?.action === 'create' &&
      (await this.hasher.verify(password, stored.params.password_hash).catch((error: unknown) => {
        throw hashRefusal(error);
      }));
    if (!same) throw new Refusal('key_conflict', KEY_CONFLICT, 'idempotency-key');
    return { task: (await this.store.get(task.id)) ?? task, replayed: true };
  }
}

/** The hasher's own limits, as the refusals a client can act on; anything else stays an internal error. */
function hashRefusal(error: unknown): unknown {
  if (!(error instanceof HashError)) return error;
  if (error.code === 'ERR_PASSWORD_HASH_QUEUE_FULL') return new Refusal('queue_full', 'too many passwords are waiting to be hashed; retry in a moment');
  if (error.code === 'ERR_PASSWORD_HASHER_CLOSED') return shuttingDown();
  return error;
}

/** What identifies a request for its Idempotency-Key (the password is checked against the stored hash instead); no ttl hashes as before ttl existed. */
function hashRequest(action: string, username: string, ttl: number | undefined): string {
  return createHash('sha256').update(JSON.stringify({ action, username, ttl })).digest('hex');
}
