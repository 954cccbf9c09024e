// Expiry: instances that end themselves (docs/task-lifecycle.md, "Expiry").
// Each second (and once at start-up, before requests are taken) the due
// expiries become delete tasks with `reason: "expired"`, each in the one
// transaction that also marks its expiry handled: a crash before the commit
// leaves it due, after it leaves it queued and handled, so it is neither lost
// nor repeated. `extend` is PATCH /instances/<ip>.
import { v7 as uuidv7 } from 'uuid';
import type { Logger } from './execution.js';
import type { Lifetimes } from './lifetimes.js';
import { canSee, type Owner } from './model.js';
import { noInstance, Refusal } from './refusal.js';
import type { TaskStore } from './store.js';

/** How often due expiries are looked for: the precision of an expiry. One indexed query on the pending ones. */
const SWEEP_MS = 1_000;
/** Expiries turned into deletes per sweep: a backlog (after a long stop) is worked off a page a second. */
const SWEEP_PAGE = 100;

/** What PATCH /instances/<ip> answers: the instance's create and its new expiry. */
export interface Lifetime {
  ip: string;
  instance_id: string | null;
  task_id: string;
  created_by: string;
  expires_at: string;
}

export class Expiry {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<number> | null = null;

  constructor(
    private readonly store: TaskStore,
    private readonly lifetimes: Lifetimes,
    private readonly log: Logger,
  ) {}

  /** Queues what is due now, then keeps doing so each second until `stop`. */
  async start(): Promise<void> {
    await this.sweep();
    this.timer = setInterval(() => {
      this.sweep().catch((error: unknown) => this.log.error({ err: error }, 'could not queue the deletes of expired instances'));
    }, SWEEP_MS).unref();
  }

  /** No expiry is queued from now on (the service stops); a sweep under way finishes. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping?.catch(() => undefined);
  }

  /** One pass: due expiries become delete tasks; the number queued. Never two passes at once. */
  sweep(): Promise<number> {
    this.sweeping ??= this.queueDue().finally(() => (this.sweeping = null));
    return this.sweeping;
  }

  private async queueDue(): Promise<number> {
    await this.lifetimes.clearMoot();
    let queued = 0;
    for (const due of await this.lifetimes.due(SWEEP_PAGE)) {
      const id = uuidv7();
      const task = {
        id,
        action: 'delete' as const,
        params: { ip: due.ip },
        ip: due.ip,
        created_by: due.created_by,
        reason: 'expired' as const,
        expiryOf: due.id,
      };
      try {
        // Committed with its `queued` event; the store's hook tells the scheduler and the event streams.
        await this.store.add(task);
        queued++;
        this.log.info({ task_id: id, create_task_id: due.id, ip: due.ip, created_by: due.created_by }, 'instance expired: delete queued');
      } catch (error) {
        // Handled meanwhile (nothing was written): the next sweep does not see it again.
        this.log.warn({ err: error, create_task_id: due.id }, 'expiry not queued');
      }
    }
    return queued;
  }

  /** PATCH /instances/<ip>: the instance now expires `ttlSeconds` from now. */
  async extend(ip: string, ttlSeconds: number, owner: Owner): Promise<Lifetime> {
    const live = await this.lifetimes.live(ip);
    if (!live || !canSee(owner, live.created_by)) throw new Refusal('not_found', noInstance(ip));
    if (live.deleting) {
      throw new Refusal(
        'conflict',
        `the instance at ${ip} is being deleted (task ${live.deleting}); cancel that task first (POST /tasks/${live.deleting}/cancel) to keep it`,
      );
    }
    const expires_at = new Date(Date.now() + ttlSeconds * 1000).toISOString();
    await this.lifetimes.extend(live.id, expires_at);
    this.log.info({ create_task_id: live.id, ip, expires_at }, 'instance expiry moved');
    return { ip, instance_id: live.instance_id, task_id: live.id, created_by: live.created_by, expires_at };
  }
}
