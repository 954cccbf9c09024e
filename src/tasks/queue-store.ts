// better-queue's store interface on the `queue_items` table, so the queue's
// state survives a crash (its default memory store forgets everything).
// Semantics follow better-queue-memory: a batch is "taken" by stamping its
// rows with a lock id; releasing the lock deletes them.
import { v4 as uuidv4 } from 'uuid';
import type BetterQueue from 'better-queue';
import type { Db } from './db.js';
import type { GroupCommit } from './group-commit.js';

export interface QueuePayload {
  id: string;
}

// better-queue's typings pass the value positionally even on error.
type Callback<T = void> = (error: any, value: T) => void; // eslint-disable-line @typescript-eslint/no-explicit-any

export class SqliteQueueStore implements BetterQueue.Store<QueuePayload> {
  private readonly stmt;

  /** With `commits`, putTask joins the group commit of the requests that queued the task. */
  constructor(
    private readonly db: Db,
    private readonly commits?: GroupCommit,
  ) {
    this.stmt = {
      count: db.prepare('SELECT count(*) AS n FROM queue_items'),
      get: db.prepare('SELECT payload FROM queue_items WHERE task_id = ? AND lock_id IS NULL'),
      put: db.prepare(
        `INSERT INTO queue_items (task_id, payload, priority) VALUES (@task_id, @payload, @priority)
         ON CONFLICT (task_id) WHERE lock_id IS NULL DO UPDATE SET payload = excluded.payload, priority = excluded.priority`,
      ),
      delete: db.prepare('DELETE FROM queue_items WHERE task_id = ? AND lock_id IS NULL'),
      deleteAll: db.prepare('DELETE FROM queue_items WHERE task_id = ?'),
      takeFirst: db.prepare(
        `UPDATE queue_items SET lock_id = @lock WHERE seq IN (
           SELECT seq FROM queue_items WHERE lock_id IS NULL ORDER BY priority DESC, seq ASC LIMIT @n)`,
      ),
      takeLast: db.prepare(
        `UPDATE queue_items SET lock_id = @lock WHERE seq IN (
           SELECT seq FROM queue_items WHERE lock_id IS NULL ORDER BY priority DESC, seq DESC LIMIT @n)`,
      ),
      lock: db.prepare('SELECT task_id, payload FROM queue_items WHERE lock_id = ? ORDER BY seq'),
      running: db.prepare('SELECT lock_id, task_id, payload FROM queue_items WHERE lock_id IS NOT NULL ORDER BY seq'),
      release: db.prepare('DELETE FROM queue_items WHERE lock_id = ?'),
      unlockAll: db.prepare('UPDATE queue_items SET lock_id = NULL WHERE lock_id IS NOT NULL'),
      unlockTask: db.prepare('UPDATE queue_items SET lock_id = NULL WHERE task_id = ?'),
      ids: db.prepare('SELECT task_id FROM queue_items'),
    };
  }

  // --- better-queue's interface. The driver is synchronous; callbacks are
  // still called on a later tick, as better-queue expects of a store. ---

  connect(cb: Callback<number>): void {
    this.defer(cb, () => (this.stmt.count.get() as { n: number }).n);
  }

  getTask(taskId: string, cb: Callback<QueuePayload>): void {
    // better-queue reads `undefined` as "not in the queue"; its typings say otherwise.
    this.defer(cb as Callback<QueuePayload | undefined>, () => {
      const row = this.stmt.get.get(taskId) as { payload: string } | undefined;
      return row ? (JSON.parse(row.payload) as QueuePayload) : undefined;
    });
  }

  putTask(taskId: string, task: QueuePayload, priority: number | undefined, cb: Callback): void {
    const put = () => {
      this.stmt.put.run({ task_id: taskId, payload: JSON.stringify(task), priority: priority ?? 0 });
    };
    if (!this.commits) return this.defer(cb, put);
    this.commits.run(put).then(
      () => cb(null, undefined),
      (error: unknown) => cb(error, undefined),
    );
  }

  deleteTask(taskId: string, cb: Callback): void {
    this.defer(cb, () => {
      this.stmt.delete.run(taskId);
    });
  }

  takeFirstN(n: number, cb: Callback<string>): void {
    this.defer(cb, () => this.take(this.stmt.takeFirst, n));
  }

  takeLastN(n: number, cb: Callback<string>): void {
    this.defer(cb, () => this.take(this.stmt.takeLast, n));
  }

  getLock(lockId: string, cb: Callback<Record<string, QueuePayload>>): void {
    this.defer(cb, () => {
      const batch: Record<string, QueuePayload> = {};
      for (const row of this.stmt.lock.all(lockId) as { task_id: string; payload: string }[]) {
        batch[row.task_id] = JSON.parse(row.payload) as QueuePayload;
      }
      return batch;
    });
  }

  getRunningTasks(cb: Callback<Record<string, Record<string, QueuePayload>>>): void {
    this.defer(cb, () => {
      const running: Record<string, Record<string, QueuePayload>> = {};
      for (const row of this.stmt.running.all() as { lock_id: string; task_id: string; payload: string }[]) {
        (running[row.lock_id] ??= {})[row.task_id] = JSON.parse(row.payload) as QueuePayload;
      }
      return running;
    });
  }

  releaseLock(lockId: string, cb: Callback): void {
    this.defer(cb, () => {
      this.stmt.release.run(lockId);
    });
  }

  close(cb: Callback): void {
    // The database belongs to the service, which closes it after the queue.
    setImmediate(() => cb(null, undefined));
  }

  // --- Used by start-up reconciliation and shutdown, outside better-queue. ---

  /** Unlocks every batch, so tasks of an interrupted run are queued again, in their order. */
  unlockAll(): number {
    return this.stmt.unlockAll.run().changes;
  }

  unlock(taskIds: string[]): void {
    this.db.transaction(() => {
      for (const id of taskIds) this.stmt.unlockTask.run(id);
    })();
  }

  taskIds(): Set<string> {
    return new Set((this.stmt.ids.all() as { task_id: string }[]).map((row) => row.task_id));
  }

  /** Only for reconciliation, after unlockAll(): no row of the task exists. */
  insertNow(taskId: string): void {
    this.stmt.put.run({ task_id: taskId, payload: JSON.stringify({ id: taskId }), priority: 0 });
  }

  deleteNow(taskId: string): void {
    this.stmt.deleteAll.run(taskId);
  }

  private take(stmt: { run(params: object): unknown }, n: number): string {
    const lock = uuidv4();
    stmt.run({ lock, n });
    return lock;
  }

  private defer<T>(cb: Callback<T>, work: () => T): void {
    let value: T;
    try {
      value = work();
    } catch (error) {
      setImmediate(() => cb(error, undefined as T));
      return;
    }
    setImmediate(() => cb(null, value));
  }
}
