// Waiting for a task to end: its event stream drives the progress display.
// Ctrl-C stops following, never the task: the message says how to cancel it.
import type { Connection } from './client.js';
import { CliError, EXIT } from './errors.js';
import { followTask } from './events.js';
import type { Output } from './output.js';
import { progress } from './progress.js';
import type { Task } from '../api/documents.js';
import { isTerminal } from '../api/lifecycle.js';

export async function waitForTask(conn: Connection, o: Output, task: Task): Promise<Task> {
  if (isTerminal(task.status)) return task;
  const id = task.task_id;
  o.err(`${task.action} task ${id} ${task.status}`);
  const view = progress(o, task.action);
  const controller = new AbortController();
  const interrupted = new CliError(
    `stopped following; task ${id} goes on. Cancel it with \`ec2-api cancel ${id}\`, or follow it again with \`ec2-api logs ${id} --follow\``,
    EXIT.interrupted,
  );
  const onSigint = () => controller.abort(interrupted);
  process.on('SIGINT', onSigint);
  try {
    return await followTask(conn, id, { signal: controller.signal, onEvent: (event) => view.event(event), onNotice: (message) => view.notice(message) });
  } catch (error) {
    throw controller.signal.aborted ? interrupted : error;
  } finally {
    process.off('SIGINT', onSigint);
    view.stop();
  }
}
