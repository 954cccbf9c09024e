// What is kept, and for how long (docs/task-lifecycle.md, "What is kept, and
// for how long"): a sweep drops the expired idempotency keys (and the
// password hashes only they kept), deletes the tasks that ended more than
// EC2_API_RETENTION ago with their events and their runs' logs, and gives
// the freed pages back to the file system (auto_vacuum=INCREMENTAL). Every
// step is a short transaction with a pause between them, so requests never
// wait long behind a sweep.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from './db.js';
import type { Logger } from './execution.js';
import type { TaskStore } from './store.js';

/** Tasks deleted per transaction. */
const PURGE_BATCH = 100;
/** Pages (4 KiB) given back per transaction. */
const VACUUM_PAGES = 512;
/** The longest between sweeps: an expired task goes within this (plus a sweep's own time). */
const MAX_SWEEP_MS = 30_000;
/** Between two transactions of a sweep: requests get the database. */
const PAUSE_MS = 2;

export interface SweepReport {
  keys: number;
  tasks: number;
  pages: number;
}

export class Housekeeping {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<SweepReport> | undefined;
  private stopped = false;

  constructor(
    /** The SQLite file, whose free pages a sweep gives back; null on PostgreSQL, where autovacuum does. */
    private readonly db: Db | null,
    private readonly store: TaskStore,
    /** EC2_API_RETENTION in seconds; 0 keeps every task. */
    private readonly retentionSeconds: number,
    private readonly log: Logger,
  ) {}

  /** A sweep now, then every half retention (at most 30 s): a task goes within a minute of expiring. */
  start(): void {
    const every = this.retentionSeconds > 0 ? Math.min(MAX_SWEEP_MS, Math.max(1_000, (this.retentionSeconds * 1000) / 2)) : MAX_SWEEP_MS;
    void this.sweep();
    this.timer = setInterval(() => void this.sweep(), every).unref();
  }

  /** No sweep starts any more; resolves once the one under way (if any) has stopped. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.sweeping;
  }

  /** One sweep (joins the one under way). Never rejects: a failure is logged, and the next sweep tries again. */
  sweep(): Promise<SweepReport> {
    this.sweeping ??= this.run().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  private async run(): Promise<SweepReport> {
    const report: SweepReport = { keys: 0, tasks: 0, pages: 0 };
    try {
      report.keys = await this.store.purgeExpiredKeys();
      if (this.retentionSeconds > 0) {
        const cutoff = new Date(Date.now() - this.retentionSeconds * 1000).toISOString();
        for (let deleted = PURGE_BATCH; deleted === PURGE_BATCH && !this.stopped; await sleep(PAUSE_MS)) {
          deleted = await this.store.purgeEnded(cutoff, PURGE_BATCH);
          report.tasks += deleted;
        }
      }
      if (report.tasks) report.pages = await this.vacuum();
      if (report.tasks) this.log.info({ ...report }, 'deleted tasks past EC2_API_RETENTION');
    } catch (error) {
      this.log.warn({ err: error }, 'housekeeping failed; the next sweep tries again');
    }
    return report;
  }

  /** Gives the free pages back, a few at a time; how many went. */
  private async vacuum(): Promise<number> {
    let freed = 0;
    if (!this.db) return 0;
    for (;;) {
      const free = this.db.pragma('freelist_count', { simple: true }) as number;
      if (free === 0 || this.stopped) return freed;
      this.db.pragma(`incremental_vacuum(${VACUUM_PAGES})`);
      freed += Math.min(free, VACUUM_PAGES);
      await sleep(PAUSE_MS);
    }
  }
}
