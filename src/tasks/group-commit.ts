// Group commit: the writes asked for in one turn of the event loop share one
// SQLite transaction, so a burst of requests pays for one commit (one WAL
// append, one lock) instead of one each. A caller's promise settles only
// after the transaction holding its write has committed, so "resolved" still
// means "on disk" (as far as the synchronous pragma promises).
//
// Each write must be a single statement or a db.transaction() function
// (which nests as a savepoint): a failing write then undoes only itself and
// rejects only its own caller.
import type { Db } from './db.js';

interface Pending {
  write: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export class GroupCommit {
  private pending: Pending[] = [];
  private scheduled = false;

  constructor(private readonly db: Db) {}

  run<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ write, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // After the I/O phase: every request read in this turn joins the group.
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Commits what is pending now, synchronously: for a process about to exit
   * (the promises settle on later ticks, which may never come).
   */
  flush(): void {
    this.scheduled = false;
    const group = this.pending;
    this.pending = [];
    if (!group.length) return;
    const outcomes: { ok: boolean; value?: unknown; error?: unknown }[] = [];
    try {
      this.db.transaction(() => {
        for (const { write } of group) {
          try {
            outcomes.push({ ok: true, value: write() });
          } catch (error) {
            outcomes.push({ ok: false, error });
          }
        }
      })();
    } catch (error) {
      // The commit itself failed (disk full, database closed): nothing is stored.
      for (const { reject } of group) reject(error);
      return;
    }
    group.forEach(({ resolve, reject }, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) resolve(outcome.value);
      else reject(outcome.error);
    });
  }
}
