// Cancel: a queued task never runs; a running one has its cancel recorded in
// its row (the one place cancel state lives: it survives a crash) and its
// playbook run stopped; execution then terminates what a create launched.
import type { TaskEvents } from './events.js';
import type { Execution, Logger } from './execution.js';
import { TERMINAL, type Task } from './model.js';
import { Refusal } from './refusal.js';
import type { TaskStore } from './store.js';
import type { Waiters } from './waiters.js';

export class Cancellation {
  constructor(
    private readonly store: TaskStore,
    private readonly events: TaskEvents,
    private readonly waiters: Waiters,
    private readonly execution: Execution,
    private readonly log: Logger,
  ) {}

  /** Cancels a task; resolves with it once canceled, or with its state after `waitMs` (cleanup still going). */
  async cancel(id: string, waitMs: number): Promise<Task> {
    const task = this.store.get(id);
    if (!task) throw new Refusal('not_found', 'task not found');
    if (this.store.cancelQueued(id)) {
      const canceled = this.store.get(id)!;
      this.events.recordStatus([canceled]);
      this.waiters.ended(id);
      this.log.info({ task_id: id, action: canceled.action }, 'task canceled before it ran');
      return canceled;
    }
    if (this.store.requestCancel(id)) {
      this.log.info({ task_id: id }, 'cancel requested for a running task');
      // No run holds it yet (claimed, not started): execution sees the cancel when it starts.
      this.execution.stopRunOf(id);
      return (await this.waiters.waitFor(id, waitMs, (t) => TERMINAL.has(t.status))) ?? this.store.get(id)!;
    }
    const current = this.store.get(id)!;
    throw new Refusal('finished', `the task has already ${current.status === 'canceled' ? 'been canceled' : current.status}; nothing to cancel`);
  }
}
