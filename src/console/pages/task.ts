// One task's page: its events (GET /tasks/<id>/events) go into a TaskModel
// (task/model.ts), which task/view.ts draws; task/log.ts follows the
// playbook log; Cancel asks first, then POSTs the cancel.
import type { Task } from '../../api/documents.js';
import { streamEvent, type StreamEvent } from '../../api/lifecycle.js';
import { api, type ApiError } from '../api.js';
import { confirmDialog } from '../dialog.js';
import { announce, h } from '../dom.js';
import { canCancel, cancelConsequence, noteServerTime, taskTitle } from '../format.js';
import type { Page } from '../page.js';
import { follow } from '../sse.js';
import { followLog } from './task/log.js';
import { TaskModel } from './task/model.js';
import { taskView, type CancelState } from './task/view.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const taskPage: Page = (ctx) => {
  const id = (ctx.params.id ?? '').toLowerCase();
  ctx.title(`Task ${id.slice(-8)}`);
  const model = new TaskModel();
  const cancel: CancelState = { busy: false, message: null };
  let closed = false;
  const view = taskView(ctx.main, id, () => void askCancel());
  const render = () => view.render(model, cancel);

  if (!UUID.test(id)) {
    view.notFound(`“${id}” is not a task id: task ids look like 01a21c5a-6dbb-7575-a344-8105e40c2f30.`);
    return;
  }

  const askCancel = async () => {
    const task = model.task;
    if (!task || !canCancel(task)) return;
    const sure = await confirmDialog({
      title: 'Cancel this task?',
      body: [h('p', null, `${taskTitle(task)} (${task.status}).`), h('p', null, cancelConsequence(task))],
      confirm: 'Cancel the task',
      keep: 'Keep it going',
    });
    if (!sure || closed) return;
    cancel.busy = true;
    cancel.message =
      task.status === 'running' && task.action === 'create'
        ? 'Stopping the playbook, then terminating the instance if it was launched. This can take a little while.'
        : 'Canceling…';
    render();
    try {
      const answer = await api<Task>(`/tasks/${id}/cancel`, { method: 'POST', accept: [202] });
      cancel.message = answer.status === 202 ? 'Canceled: the clean-up is still going on, and shows here as it finishes.' : 'Canceled.';
      if (model.apply({ type: 'end', data: answer.body })) statusChanged(answer.body);
    } catch (error) {
      const e = error as ApiError;
      cancel.message = e.status === 409 ? `It could not be canceled: ${e.message}` : `The cancel failed: ${e.message}`;
    } finally {
      cancel.busy = false;
      if (!closed) render();
      announce(cancel.message ?? '');
    }
  };

  const log = followLog(id, view.log, () => model.task !== null);

  // Events in one go (a whole history, a burst) are applied together, then drawn once.
  let first = true;
  let queue: StreamEvent[] = [];
  let flushTimer: number | undefined;
  const flush = () => {
    flushTimer = undefined;
    const batch = queue;
    queue = [];
    for (const event of batch) {
      noteServerTime((event.data as { at?: string }).at);
      if (model.apply(event) && !first) statusChanged(model.task!);
    }
    first = false;
    if (closed) return;
    render();
    if (model.ended) {
      if (!log.complete) log.read(true);
    } else if (batch.some((event) => event.type !== 'status')) log.soon();
  };

  const statusChanged = (task: Task) => {
    view.liveStatus.textContent = `${taskTitle(task)}: ${task.status}`;
    if (model.ended) announce(`The task ${task.status}${task.ip && task.action === 'create' && task.status === 'succeeded' ? `: the instance runs at ${task.ip}` : ''}.`);
  };

  const stream = follow({
    url: `/tasks/${id}/events`,
    onMessage: (message) => {
      const event = streamEvent(message);
      if (!event || event.type === 'ready' || event.type === 'stopping') return;
      queue.push(event);
      flushTimer ??= window.setTimeout(flush, 30);
    },
    isLast: (message) => message.event === ('end' satisfies StreamEvent['type']),
    onFail: (error) => {
      if (error.status === 404) view.notFound(`No task has the id ${id}: it may belong to another service, or to a database that was reset.`);
      else view.cannotFollow(`Could not follow the task: ${error.message}`);
    },
  });

  log.read(true);
  const ticker = window.setInterval(() => view.tick(model), 500);

  return () => {
    closed = true;
    stream.close();
    log.close();
    window.clearInterval(ticker);
    window.clearTimeout(flushTimer);
  };
};
