// One task: where it is (a progress bar over the playbook's steps), how it got
// there (a waterfall of its steps, each as long as it took), what Ansible
// printed (the log, following live, then complete), the instance it launched
// or deleted, and a Cancel button while it can be canceled.
import { api, ApiError } from '../api.js';
import { announce, fill, h, link, uid } from '../dom.js';
import { confirmDialog } from '../dialog.js';
import {
  canCancel,
  cancelConsequence,
  duration,
  noteServerTime,
  progressText,
  serverNow,
  statusBadge,
  taskDuration,
  taskTitle,
  timeElement,
} from '../format.js';
import type { Page } from '../page.js';
import { follow, type SseMessage } from '../sse.js';
import { TERMINAL, type StepEnd, type StepStart, type Task } from '../types.js';

interface Step {
  step: number;
  of: number;
  name: string;
  start: number;
  end: number | null;
  status: string | null;
  msg?: string;
}

/** Steps are numbered per play: a number that does not go up starts a new group (another play or run). */
type Group = Step[];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const taskPage: Page = (ctx) => {
  const id = (ctx.params.id ?? '').toLowerCase();
  ctx.title(`Task ${id.slice(-8)}`);
  const heading = h('h1', { tabindex: '-1' }, 'Task');
  const badge = h('span', { class: 'heading-badge', 'data-testid': 'task-status' });
  const idLine = h('p', { class: 'mono small muted task-id' }, id);
  const progressLabelId = uid('progress-label');
  const progressBar = h('progress', { 'aria-labelledby': progressLabelId, max: 1 });
  const progressLabel = h('p', { id: progressLabelId, class: 'progress-label', 'data-testid': 'progress-text' });
  const errorBox = h('section', { class: 'error-box', hidden: true, 'aria-labelledby': 'error-heading' });
  const instanceBox = h('section', { class: 'card instance-card', 'aria-labelledby': 'instance-heading' });
  const cancelBox = h('section', { class: 'card cancel-card', hidden: true, 'aria-labelledby': 'cancel-heading' });
  const facts = h('dl', { class: 'facts' });
  const waterfallBox = h('div', { class: 'waterfall-box' });
  const followBox = h('input', { type: 'checkbox', id: 'follow-log', checked: true });
  const logState = h('span', { class: 'log-state muted small', 'data-testid': 'log-state' });
  const log = h('pre', { class: 'log', tabindex: '0', 'aria-label': 'Playbook log', 'data-testid': 'log' });
  const liveStatus = h('p', { class: 'sr-only', 'aria-live': 'polite' });

  fill(
    ctx.main,
    h('p', { class: 'crumbs' }, link('/ui/tasks', null, '← All tasks')),
    h('div', { class: 'page-head' }, heading, badge),
    idLine,
    h('section', { class: 'card progress-card', 'aria-label': 'Progress' }, progressLabel, progressBar),
    errorBox,
    h('div', { class: 'two-col' }, instanceBox, h('section', { class: 'card', 'aria-label': 'Times' }, facts)),
    cancelBox,
    h('section', { class: 'card', 'aria-labelledby': 'steps-heading' }, h('h2', { id: 'steps-heading' }, 'Playbook steps'), waterfallBox),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'log-heading' },
      h('div', { class: 'log-head' }, h('h2', { id: 'log-heading' }, 'Playbook log'), logState, h('label', { class: 'check', for: 'follow-log' }, followBox, ' Follow the end')),
      log,
      h('p', { class: 'small muted' }, 'Tasks that ran in one batch share one playbook run, and so this log. Secrets never appear in it (no_log).'),
    ),
    liveStatus,
  );

  if (!UUID.test(id)) {
    notFound(`“${id}” is not a task id: task ids look like 01a21c5a-6dbb-7575-a344-8105e40c2f30.`);
    return;
  }

  let task: Task | null = null;
  const groups: Group[] = [];
  let closed = false;
  let canceling = false;
  let cancelMessage: string | null = null;

  function notFound(message: string) {
    fill(ctx.main, h('p', { class: 'crumbs' }, link('/ui/tasks', null, '← All tasks')), h('h1', { tabindex: '-1' }, 'No such task'), h('p', { class: 'error-text' }, message));
  }

  // ---- the model, from the task's events ----------------------------------

  const stepStart = (data: StepStart) => {
    const start = Date.parse(data.at);
    let group = groups.at(-1);
    const previous = group?.at(-1);
    if (!group || !previous || data.step <= previous.step || data.of !== previous.of) {
      group = [];
      groups.push(group);
    }
    // A step still open when the next one starts has ended without saying so.
    for (const open of groups.flat()) if (open.end === null) open.end = start;
    group.push({ step: data.step, of: data.of, name: data.name, start, end: null, status: null });
  };

  const stepEnd = (data: StepEnd) => {
    const end = Date.parse(data.at);
    const step = groups
      .flat()
      .reverse()
      .find((s) => s.step === data.step && s.name === data.name && s.status === null);
    if (step) {
      step.status = data.status;
      step.end = data.duration_ms !== null && data.duration_ms !== undefined ? step.start + data.duration_ms : end;
      if (data.msg) step.msg = data.msg;
    }
  };

  // ---- rendering -----------------------------------------------------------

  const render = () => {
    if (!task) return;
    heading.textContent = `${taskTitle(task)}`;
    fill(badge, statusBadge(task.status));
    renderProgress(task);
    renderError(task);
    renderInstance(task);
    renderFacts(task);
    renderCancel(task);
    renderWaterfall();
  };

  const renderProgress = (t: Task) => {
    const failedStep = groups.flat().find((s) => s.status === 'failed' || s.status === 'unreachable');
    let text = progressText(t);
    if (t.status === 'running' && t.progress) {
      progressBar.max = t.progress.of;
      progressBar.value = t.progress.step;
    } else if (t.status === 'queued') {
      progressBar.removeAttribute('value'); // indeterminate: it has not started
    } else if (TERMINAL.has(t.status)) {
      progressBar.max = 1;
      progressBar.value = t.status === 'succeeded' ? 1 : (t.progress ? t.progress.step / t.progress.of : 0);
      if (t.status === 'succeeded') text = t.action === 'create' ? `Succeeded: the instance runs${t.ip ? ` at ${t.ip}` : ''}` : 'Succeeded: the instance is terminated';
      else if (t.status === 'failed') text = failedStep ? `Failed at step ${failedStep.step} of ${failedStep.of}: ${failedStep.name}` : 'Failed';
      else text = 'Canceled';
      const took = taskDuration(t);
      if (took !== null) text += ` (took ${duration(took)})`;
    }
    progressBar.className = `status-${t.status}`;
    progressLabel.textContent = text;
  };

  const renderError = (t: Task) => {
    const show = Boolean(t.error) && t.status !== 'succeeded';
    errorBox.hidden = !show;
    errorBox.className = `error-box ${t.status === 'canceled' ? 'is-note' : ''}`;
    if (show) fill(errorBox, h('h2', { id: 'error-heading' }, t.status === 'canceled' ? 'Why it ended' : 'Error'), h('p', { class: 'pre-wrap', 'data-testid': 'task-error' }, t.error));
  };

  const renderInstance = (t: Task) => {
    const rows: [string, string | HTMLElement | null][] = [
      ['Public IP', t.ip ? h('span', { class: 'mono', 'data-testid': 'task-ip' }, t.ip) : null],
      ['Instance ID', t.instance_id ? h('span', { class: 'mono' }, t.instance_id) : null],
      ['State', t.instance_state],
    ];
    let lead: string;
    if (t.action === 'create') {
      lead =
        t.status === 'succeeded'
          ? 'The instance this task launched:'
          : t.instance_id
            ? 'The instance this task launched:'
            : t.status === 'queued'
              ? 'No instance yet: the task has not started.'
              : t.status === 'running'
                ? 'Not known yet: the playbook reports the instance it launched when it ends (the log shows it sooner).'
                : 'No instance was launched.';
    } else {
      lead = t.status === 'succeeded' ? 'The instance this task terminated:' : 'The instance this task terminates:';
    }
    fill(
      instanceBox,
      h('h2', { id: 'instance-heading' }, t.action === 'create' ? 'Instance launched' : 'Instance deleted'),
      h('p', null, lead),
      h('dl', { class: 'facts' }, rows.filter(([, value]) => value).map(([name, value]) => [h('dt', null, name), h('dd', null, value)])),
      t.action === 'create' && t.status === 'succeeded' ? h('p', null, link('/ui/instances', null, 'See it among the instances')) : null,
    );
  };

  const renderFacts = (t: Task) => {
    const took = taskDuration(t);
    const rows: [string, HTMLElement | string][] = [
      ['Created', timeElement(t.created_at)],
      ['Started', timeElement(t.started_at)],
      ['Finished', timeElement(t.finished_at)],
      [t.finished_at ? 'Took' : 'Running for', h('span', { 'data-took': '' }, took === null ? '—' : duration(took))],
    ];
    if (t.attempts > 1) rows.push(['Runs', `${t.attempts} (it was interrupted by a restart and ran again)`]);
    fill(facts, rows.map(([name, value]) => [h('dt', null, name), h('dd', null, value)]));
  };

  const renderCancel = (t: Task) => {
    const show = canCancel(t) || canceling || cancelMessage !== null;
    cancelBox.hidden = !show;
    if (!show) return;
    const button = h(
      'button',
      { type: 'button', class: 'danger', disabled: canceling || !canCancel(t), onclick: () => void askCancel() },
      canceling ? 'Canceling…' : 'Cancel this task…',
    );
    fill(
      cancelBox,
      h('h2', { id: 'cancel-heading' }, 'Cancel'),
      canCancel(t) ? h('p', null, cancelConsequence(t)) : null,
      canCancel(t) || canceling ? h('p', null, button) : null,
      cancelMessage ? h('p', { class: 'cancel-message', role: 'status' }, cancelMessage) : null,
    );
  };

  const askCancel = async () => {
    if (!task || !canCancel(task)) return;
    const sure = await confirmDialog({
      title: 'Cancel this task?',
      body: [h('p', null, `${taskTitle(task)} (${task.status}).`), h('p', null, cancelConsequence(task))],
      confirm: 'Cancel the task',
      keep: 'Keep it going',
    });
    if (!sure || closed) return;
    canceling = true;
    cancelMessage =
      task.status === 'running' && task.action === 'create'
        ? 'Stopping the playbook, then terminating the instance if it was launched. This can take a little while.'
        : 'Canceling…';
    render();
    try {
      const answer = await api<Task>(`/tasks/${id}/cancel`, { method: 'POST', accept: [202] });
      cancelMessage = answer.status === 202 ? 'Canceled: the clean-up is still going on, and shows here as it finishes.' : 'Canceled.';
      apply(answer.body);
    } catch (error) {
      const e = error as ApiError;
      cancelMessage = e.status === 409 ? `It could not be canceled: ${e.message}` : `The cancel failed: ${e.message}`;
    } finally {
      canceling = false;
      if (!closed) render();
      announce(cancelMessage ?? '');
    }
  };

  const renderWaterfall = () => {
    const steps = groups.flat();
    if (steps.length === 0) {
      fill(waterfallBox, h('p', { class: 'muted' }, task?.status === 'queued' ? 'No steps yet: the task waits for a playbook worker.' : 'No steps recorded.'));
      return;
    }
    const ended = task && TERMINAL.has(task.status);
    const finish = task?.finished_at ? Date.parse(task.finished_at) : null;
    const now = ended ? (finish ?? Math.max(...steps.map((s) => s.end ?? s.start))) : serverNow();
    // The axis is the task's run, from its start: ansible-playbook's own start-up shows as the gap before step 1.
    const started = task?.started_at ? Date.parse(task.started_at) : Number.POSITIVE_INFINITY;
    const t0 = Math.min(started, ...steps.map((s) => s.start));
    const t1 = Math.max(now, ...steps.map((s) => s.end ?? s.start), t0 + 1);
    const span = t1 - t0;
    const lengths = steps.map((s) => (s.end ?? now) - s.start);
    const slowest = steps.length > 1 ? lengths.indexOf(Math.max(...lengths)) : -1;
    let index = 0;
    const list = (group: Group, n: number) =>
      h(
        'ol',
        { class: 'waterfall', 'aria-label': groups.length > 1 ? `Play ${n + 1}` : 'Steps' },
        group.map((s) => {
          const i = index++;
          const end = s.end ?? (ended ? (finish ?? now) : now);
          const status = s.status ?? (s.end === null && !ended ? 'running' : 'stopped');
          const length = end - s.start;
          const bar = h('span', { class: `wf-bar wf-bar-${status}` });
          bar.style.left = `${(((s.start - t0) / span) * 100).toFixed(3)}%`;
          bar.style.width = `max(2px, ${((length / span) * 100).toFixed(3)}%)`;
          return h(
            'li',
            { class: `step step-${status}${i === slowest ? ' slowest' : ''}`, 'data-step': s.step, 'data-status': status },
            h(
              'span',
              { class: 'step-label' },
              h('span', { class: 'step-num' }, `${s.step}/${s.of}`),
              ' ',
              h('span', { class: 'step-name' }, s.name),
              i === slowest ? h('span', { class: 'tag' }, 'slowest') : null,
              s.msg && (status === 'failed' || status === 'unreachable') ? h('span', { class: 'step-msg' }, s.msg) : null,
            ),
            h('span', { class: 'track', 'aria-hidden': 'true' }, bar),
            h('span', { class: `step-status text-${status}` }, status === 'running' ? 'running…' : status),
            h('span', { class: 'step-time' }, duration(length)),
          );
        }),
      );
    fill(
      waterfallBox,
      h('div', { class: 'axis', 'aria-hidden': 'true' }, h('div', { class: 'axis-scale' }, h('span', null, '0 s'), h('span', null, duration(span)))),
      groups.map((group, n) => [groups.length > 1 ? h('h3', { class: 'group-head' }, `Play ${n + 1}`) : null, list(group, n)]),
    );
  };

  // ---- the log -------------------------------------------------------------

  let logOffset = 0;
  let logComplete = false;
  let logBusy = false;
  let logAgain = false;
  let logTimer: number | undefined;

  const fetchLog = async (fromStart = false) => {
    if (logBusy) {
      logAgain = true;
      return;
    }
    logBusy = true;
    try {
      const offset = fromStart ? 0 : logOffset;
      const { body, headers } = await api<string>(`/tasks/${id}/log${offset ? `?offset=${offset}` : ''}`, { text: true });
      if (closed) return;
      const length = Number(headers.get('x-log-length') ?? 0);
      const complete = headers.get('x-log-complete') === 'true';
      if (length < offset) {
        // Shorter than what was shown: the task's run started over (it was requeued). Read it again from the start.
        logOffset = 0;
        logAgain = true;
        return;
      }
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      if (offset === 0) log.textContent = body;
      else if (body) log.append(body);
      logOffset = length; // offsets count the whole output, the part left out of a long one included
      logComplete = complete;
      logState.textContent = complete ? `complete, ${logOffset.toLocaleString('en')} characters` : `following live, ${logOffset.toLocaleString('en')} characters so far`;
      if (!log.textContent) log.textContent = '';
      log.classList.toggle('empty', !log.textContent);
      if (followBox.checked && (atEnd || !complete)) log.scrollTop = log.scrollHeight;
    } catch (error) {
      if (!closed && (error as ApiError).status !== 401) logState.textContent = `could not read the log: ${(error as ApiError).message}`;
    } finally {
      logBusy = false;
      if (logAgain && !closed) {
        logAgain = false;
        void fetchLog();
      }
    }
  };
  /** After each step (soon) and every 2 s until the log is complete (in case a step is long and chatty). */
  const logSoon = () => {
    window.clearTimeout(logTimer);
    logTimer = window.setTimeout(() => void fetchLog(), 300);
  };
  followBox.addEventListener('change', () => {
    if (followBox.checked) log.scrollTop = log.scrollHeight;
  });

  // ---- the stream ----------------------------------------------------------

  let first = true;
  let queue: SseMessage[] = [];
  let flushTimer: number | undefined;

  const apply = (next: Task) => {
    const before = task;
    task = next;
    if (before && before.status !== next.status && !first) {
      liveStatus.textContent = `${taskTitle(next)}: ${next.status}`;
      if (TERMINAL.has(next.status)) announce(`The task ${next.status}${next.ip && next.action === 'create' && next.status === 'succeeded' ? `: the instance runs at ${next.ip}` : ''}.`);
    }
  };

  /** Events in one go (a whole history, a burst) are applied together, then drawn once. */
  const flush = () => {
    flushTimer = undefined;
    const batch = queue;
    queue = [];
    for (const message of batch) {
      const data = JSON.parse(message.data) as Record<string, unknown>;
      noteServerTime(data.at as string | undefined);
      if (message.event === 'status' || message.event === 'end') {
        const { at: _at, ...doc } = data;
        apply(doc as unknown as Task);
      } else if (message.event === 'step_start') {
        const step = data as unknown as StepStart;
        stepStart(step);
        // The task document's progress is only sent with status changes: keep it current here.
        if (task && task.status === 'running') task = { ...task, progress: { step: step.step, of: step.of, name: step.name } };
      }
      else if (message.event === 'step_end') stepEnd(data as unknown as StepEnd);
    }
    first = false;
    if (closed) return;
    render();
    if (task && TERMINAL.has(task.status)) {
      if (!logComplete) void fetchLog(true);
    } else if (batch.some((m) => m.event !== 'status')) logSoon();
  };

  const stream = follow({
    url: `/tasks/${id}/events`,
    onMessage: (message) => {
      queue.push(message);
      flushTimer ??= window.setTimeout(flush, 30);
    },
    isLast: (message) => message.event === 'end',
    onFail: (error) => {
      if (error.status === 404) notFound(`No task has the id ${id}: it may belong to another service, or to a database that was reset.`);
      else fill(progressLabel, h('span', { class: 'error-text' }, `Could not follow the task: ${error.message}`));
    },
  });

  void fetchLog(true);
  const ticker = window.setInterval(() => {
    if (!task || TERMINAL.has(task.status)) return;
    if (task.status === 'running') {
      renderWaterfall();
      const took = facts.querySelector('[data-took]');
      if (took) took.textContent = duration(taskDuration(task));
    }
  }, 500);
  // Until the log is complete: a task whose result came early has ended while its batch's run goes on.
  const logTicker = window.setInterval(() => {
    if (task && !logComplete) void fetchLog();
  }, 2_000);

  return () => {
    closed = true;
    stream.close();
    window.clearInterval(ticker);
    window.clearInterval(logTicker);
    window.clearTimeout(logTimer);
    window.clearTimeout(flushTimer);
  };
};
