// Cancel: a task that never ran ends at once and never runs; any other has
// its cancel recorded in its row (the one place cancel state lives: it
// survives a crash) and, when running, its playbook run stopped; execution
// then terminates what a create launched (a create that ran before and went
// back to the queue is cleaned up by its next claim instead of run).
import type { TaskEvents } from './events.js';
import type { Execution, Logger } from './execution.js';
import type { Task } from './model.js';
import { Refusal, TASK_NOT_FOUND } from './refusal.js';
import type { TaskStore } from './store.js';
import type { Waiters } from './waiters.js';

export class Cancellation {
  constructor(
    private readonly store: TaskStore,
    private readonly events: TaskEvents,
    private readonly waiters: Waiters,
    private readonly execution: Execution,
    private readonly log: Logger,
    /** Whether queued tasks are being started now (not paused, not stopping). */
    private readonly startsTasks: () => boolean,
  ) {}

  /** Cancels a task; resolves with it once canceled, or with its state after `waitMs` (cleanup still going). */
  async cancel(id: string, waitMs: number): Promise<Task> {
    const task = this.store.get(id);
    if (!task) throw new Refusal('not_found', TASK_NOT_FOUND);
    if (this.store.cancelQueued(id)) {
      const canceled = this.store.get(id)!;
      this.events.recordStatus([canceled]);
      this.waiters.ended(id);
      this.log.info({ task_id: id, action: canceled.action }, 'task canceled before it ran');
      return canceled;
    }
    if (this.store.requestCancel(id)) {
      this.log.info({ task_id: id, status: task.status }, 'cancel requested: what the task launched is cleaned up');
      // When no run holds it (queued, or claimed and not started): execution sees the cancel when it runs.
      const stopped = this.execution.stopRunOf(id);
      // Nothing runs it and nothing starts tasks now (paused, or stopping): the clean-up waits for a start that
      // does, so there is nothing to wait for here.
      if (!stopped && !this.startsTasks()) return this.store.get(id)!;
      return (await this.waiters.waitFor(id, waitMs)) ?? this.store.get(id)!;
    }
    // Neither update took it, and nothing ran in between: it had ended when it was read above.
    throw new Refusal('finished', `the task has already ${task.status === 'canceled' ? 'been canceled' : task.status}; nothing to cancel`);
  }
}
