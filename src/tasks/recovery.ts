// Start-up repair after any kind of stop (docs/task-lifecycle.md). The tasks
// table is the only queue, so there is nothing to reconcile: tasks left
// `running` by the last process go back to `queued` (their next run adopts
// what the last one launched), after the playbook that process left behind,
// if any, is killed — it could otherwise race the new run into a second
// instance.
import { isSameProcessAlive, killGroupAndWait } from '../ansible/process.js';
import type { Logger } from './execution.js';
import { needsCleanUp } from './model.js';
import type { TaskStore } from './store.js';

export async function recover(store: TaskStore, maxAttempts: number, log: Logger): Promise<void> {
  const interrupted = (await store.unfinished()).filter((task) => task.status === 'running');
  const orphans = new Map<number, string>();
  for (const task of interrupted) if (task.runner_pid && task.runner_start) orphans.set(task.runner_pid, task.runner_start);
  for (const [pid, start] of orphans) {
    if (!isSameProcessAlive(pid, start)) continue;
    log.warn({ pid }, 'a playbook from the previous process is still running; killing it before its tasks run again');
    if (!(await killGroupAndWait(pid))) {
      throw new Error(`could not stop the orphaned ansible-playbook (pid ${pid}); stop it by hand, then start again`);
    }
  }

  // A canceled create goes back to be cleaned up (its instance terminated), however often it was interrupted.
  const abandoned = interrupted.filter((task) => !needsCleanUp(task) && task.attempts >= maxAttempts);
  const requeue = interrupted.filter((task) => !abandoned.includes(task));
  const ended = await Promise.all(
    abandoned.map((task) =>
      store.finish(task.id, {
        status: 'failed',
        error: `abandoned after ${task.attempts} interrupted attempts (EC2_API_MAX_ATTEMPTS); the service stopped during each run`,
      }),
    ),
  );
  const requeued = await store.requeue(
    requeue.map((task) => task.id),
    false,
  );
  if (interrupted.length) {
    log.warn({ requeued: requeued.length, ended: ended.filter(Boolean).length }, 'recovered tasks interrupted by the last stop');
  }
}
