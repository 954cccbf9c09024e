// Cancel: a task that never ran (or any queued delete) ends at once and never
// runs; a create that runs, or ran before, has its cancel recorded in its row
// (the one place cancel state lives: it survives a crash) and, when running,
// its playbook run stopped; execution then terminates what it launched (a
// create that went back to the queue is cleaned up by its next claim instead
// of run). A running delete is refused: its TerminateInstances may have gone
// out, and stopping it would only send its batch-mates back to fail
// `not_found`. Which task is which is decided in the store's writes.
import type { Execution, Logger } from './execution.js';
import type { Task } from './model.js';
import { Refusal, TASK_NOT_FOUND } from './refusal.js';
import type { TaskStore } from './store.js';
import type { Waiters } from './waiters.js';

export const DELETE_RUNNING =
  'the delete is already running and may have reached EC2 (TerminateInstances), so it cannot be canceled; wait for its result';

export class Cancellation {
  constructor(
    private readonly store: TaskStore,
    private readonly waiters: Waiters,
    private readonly execution: Execution,
    private readonly log: Logger,
    /** Whether queued tasks are being started now (not paused, not stopping). */
    private readonly startsTasks: () => boolean,
  ) {}

  /** Cancels a task; resolves with it once canceled, or with its state after `waitMs` (cleanup still going). */
  async cancel(id: string, waitMs: number): Promise<Task> {
    if (!(await this.store.get(id))) throw new Refusal('not_found', TASK_NOT_FOUND);
    const canceled = await this.store.cancelQueued(id);
    if (canceled) return canceled;
    if (await this.store.requestCancel(id)) {
      this.log.info({ task_id: id }, 'cancel requested: what the task launched is cleaned up');
      // When no run holds it (queued, or claimed and not started): execution sees the cancel when it runs.
      const stopped = this.execution.stopRunOf(id);
      // Nothing runs it and nothing starts tasks now (paused, or stopping): the clean-up waits for a start that
      // does, so there is nothing to wait for here.
      if (!stopped && !this.startsTasks()) return (await this.store.get(id))!;
      return (await this.waiters.waitFor(id, waitMs)) ?? (await this.store.get(id))!;
    }
    // Neither write took it: it has ended, or it is a running delete. Read after the writes, so a task that
    // ended in between is reported as ended.
    const task = (await this.store.get(id))!;
    if (task.status === 'running') throw new Refusal('not_cancelable', DELETE_RUNNING);
    throw new Refusal('finished', `the task has already ${task.status === 'canceled' ? 'been canceled' : task.status}; nothing to cancel`);
  }
}
