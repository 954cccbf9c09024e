// The task page's DOM: where the task is (a progress bar over the playbook's
// steps), how it got there (a waterfall of its steps, each as long as it
// took), the instance it launched or deleted, its times, a Cancel card while
// it can be canceled, and the place for its log. It draws a TaskModel; it
// fetches nothing.
import type { Task } from '../../../api/documents.js';
import { fill, h, link, uid } from '../../dom.js';
import {
  canCancel,
  cancelConsequence,
  countdownElement,
  duration,
  progressText,
  serverNow,
  statusBadge,
  taskDuration,
  taskTitle,
  tickCountdowns,
  timeElement,
} from '../../format.js';
import type { LogElements } from './log.js';
import type { Group, TaskModel } from './model.js';

/** Where a cancel asked for on this page stands. */
export interface CancelState {
  busy: boolean;
  message: string | null;
}

export interface TaskView {
  readonly log: LogElements;
  /** Said to screen readers when the status changes. */
  readonly liveStatus: HTMLElement;
  render(model: TaskModel, cancel: CancelState): void;
  /** Every half second while the task runs: the waterfall's open step and the time taken grow. */
  tick(model: TaskModel): void;
  notFound(message: string): void;
  cannotFollow(message: string): void;
}

export function taskView(main: HTMLElement, id: string, onCancel: () => void): TaskView {
  const heading = h('h1', { tabindex: '-1' }, 'Task');
  const badge = h('span', { class: 'heading-badge', 'data-testid': 'task-status' });
  const progressLabelId = uid('progress-label');
  const progressBar = h('progress', { 'aria-labelledby': progressLabelId, max: 1 });
  const progressLabel = h('p', { id: progressLabelId, class: 'progress-label', 'data-testid': 'progress-text' });
  const errorBox = h('section', { class: 'error-box', hidden: true, 'aria-labelledby': 'error-heading' });
  const instanceBox = h('section', { class: 'card instance-card', 'aria-labelledby': 'instance-heading' });
  const cancelBox = h('section', { class: 'card cancel-card', hidden: true, 'aria-labelledby': 'cancel-heading' });
  const facts = h('dl', { class: 'facts' });
  const waterfallBox = h('div', { class: 'waterfall-box' });
  const log: LogElements = {
    followEnd: h('input', { type: 'checkbox', id: 'follow-log', checked: true }),
    state: h('span', { class: 'log-state muted small', 'data-testid': 'log-state' }),
    log: h('pre', { class: 'log', tabindex: '0', 'aria-label': 'Playbook log', 'data-testid': 'log' }),
  };
  const liveStatus = h('p', { class: 'sr-only', 'aria-live': 'polite' });

  fill(
    main,
    h('p', { class: 'crumbs' }, link('/ui/tasks', null, '← All tasks')),
    h('div', { class: 'page-head' }, heading, badge),
    h('p', { class: 'mono small muted task-id' }, id),
    h('section', { class: 'card progress-card', 'aria-label': 'Progress' }, progressLabel, progressBar),
    errorBox,
    h('div', { class: 'two-col' }, instanceBox, h('section', { class: 'card', 'aria-label': 'Times' }, facts)),
    cancelBox,
    h('section', { class: 'card', 'aria-labelledby': 'steps-heading' }, h('h2', { id: 'steps-heading' }, 'Playbook steps'), waterfallBox),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'log-heading' },
      h('div', { class: 'log-head' }, h('h2', { id: 'log-heading' }, 'Playbook log'), log.state, h('label', { class: 'check', for: 'follow-log' }, log.followEnd, ' Follow the end')),
      log.log,
      h('p', { class: 'small muted' }, 'Tasks that ran in one batch share one playbook run, and so this log. Secrets never appear in it (no_log).'),
    ),
    liveStatus,
  );

  const renderProgress = (model: TaskModel, t: Task) => {
    let text = progressText(t);
    if (t.status === 'running' && t.progress) {
      progressBar.max = t.progress.of;
      progressBar.value = t.progress.step;
    } else if (t.status === 'queued') {
      progressBar.removeAttribute('value'); // indeterminate: it has not started
    } else if (model.ended) {
      progressBar.max = 1;
      progressBar.value = t.status === 'succeeded' ? 1 : t.progress ? t.progress.step / t.progress.of : 0;
      const failed = model.failedStep;
      if (t.status === 'succeeded') text = t.action === 'create' ? `Succeeded: the instance runs${t.ip ? ` at ${t.ip}` : ''}` : 'Succeeded: the instance is terminated';
      else if (t.status === 'failed') text = failed ? `Failed at step ${failed.step} of ${failed.of}: ${failed.name}` : 'Failed';
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

  const instanceLead = (t: Task): string => {
    if (t.action === 'delete') return t.status === 'succeeded' ? 'The instance this task terminated:' : 'The instance this task terminates:';
    if (t.status === 'succeeded' || t.instance_id) return 'The instance this task launched:';
    if (t.status === 'queued') return 'No instance yet: the task has not started.';
    if (t.status === 'running') return 'Not known yet: the playbook reports the instance it launched when it ends (the log shows it sooner).';
    return 'No instance was launched.';
  };

  const renderInstance = (t: Task) => {
    const rows: [string, string | HTMLElement | null][] = [
      ['Public IP', t.ip ? h('span', { class: 'mono', 'data-testid': 'task-ip' }, t.ip) : null],
      ['Instance ID', t.instance_id ? h('span', { class: 'mono' }, t.instance_id) : null],
      ['State', t.instance_state],
    ];
    fill(
      instanceBox,
      h('h2', { id: 'instance-heading' }, t.action === 'create' ? 'Instance launched' : 'Instance deleted'),
      h('p', null, instanceLead(t)),
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
      ['Asked by', t.reason === 'expired' ? `${t.created_by} (the instance expired)` : t.created_by],
    ];
    if (t.expires_at) rows.push(['Expires', countdownElement(t.expires_at)]);
    if (t.attempts > 1) rows.push(['Runs', `${t.attempts} (it was interrupted by a restart and ran again)`]);
    fill(facts, rows.map(([name, value]) => [h('dt', null, name), h('dd', null, value)]));
  };

  const renderCancel = (t: Task, cancel: CancelState) => {
    const show = canCancel(t) || cancel.busy || cancel.message !== null;
    cancelBox.hidden = !show;
    if (!show) return;
    const button = h(
      'button',
      { type: 'button', class: 'danger', disabled: cancel.busy || !canCancel(t), onclick: onCancel },
      cancel.busy ? 'Canceling…' : 'Cancel this task…',
    );
    fill(
      cancelBox,
      h('h2', { id: 'cancel-heading' }, 'Cancel'),
      canCancel(t) ? h('p', null, cancelConsequence(t)) : null,
      canCancel(t) || cancel.busy ? h('p', null, button) : null,
      cancel.message ? h('p', { class: 'cancel-message', role: 'status' }, cancel.message) : null,
    );
  };

  const renderWaterfall = (model: TaskModel) => {
    const { groups, steps, task, ended } = model;
    if (steps.length === 0) {
      fill(waterfallBox, h('p', { class: 'muted' }, task?.status === 'queued' ? 'No steps yet: the task waits for a playbook worker.' : 'No steps recorded.'));
      return;
    }
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

  return {
    log,
    liveStatus,
    render(model, cancel) {
      const t = model.task;
      if (!t) return;
      heading.textContent = taskTitle(t);
      fill(badge, statusBadge(t.status));
      renderProgress(model, t);
      renderError(t);
      renderInstance(t);
      renderFacts(t);
      renderCancel(t, cancel);
      renderWaterfall(model);
    },
    tick(model) {
      tickCountdowns(facts);
      if (model.task?.status !== 'running') return;
      renderWaterfall(model);
      const took = facts.querySelector('[data-took]');
      if (took) took.textContent = duration(taskDuration(model.task));
    },
    notFound(message) {
      fill(main, h('p', { class: 'crumbs' }, link('/ui/tasks', null, '← All tasks')), h('h1', { tabindex: '-1' }, 'No such task'), h('p', { class: 'error-text' }, message));
    },
    cannotFollow(message) {
      fill(progressLabel, h('span', { class: 'error-text' }, message));
    },
  };
}
