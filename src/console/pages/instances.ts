// The instances this service manages, read from EC2 (GET /instances runs a
// playbook: about 1.5 s), with Terminate: it asks first, then shows the
// delete task live until the instance is gone. The list reads EC2 again when
// a task that launched or terminated something ends (seen on the feed).
// Each instance shows who launched it and a countdown to its expiry, and
// Extend moves the expiry (PATCH /instances/<ip>).
import { api, ApiError } from '../api.js';
import { announce, cell, fill, h, link } from '../dom.js';
import { confirmDialog } from '../dialog.js';
import { feed, type FeedEvent } from '../feed.js';
import { countdownElement, progressText, statusBadge, tickCountdowns, timeElement } from '../format.js';
import type { Page } from '../page.js';
import type { Instance, Task } from '../../api/documents.js';
import { isTerminal } from '../../api/lifecycle.js';

/** The lifetimes Extend offers, from now. */
const EXTEND_CHOICES: [string, number][] = [
  ['2 hours', 7_200],
  ['8 hours', 28_800],
  ['1 day', 86_400],
  ['7 days', 604_800],
];

export const instancesPage: Page = (ctx) => {
  ctx.title('Instances');
  const state = h('p', { class: 'list-state', role: 'status' }, 'Reading the instances from EC2…');
  const refreshButton = h('button', { type: 'button', onclick: () => void load() }, 'Refresh');
  const deletions = h('section', { class: 'deletions', 'aria-label': 'Terminations in progress', 'aria-live': 'polite', hidden: true });
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'instances', hidden: true },
    h('caption', { class: 'sr-only' }, 'Instances launched by this service that are not terminated'),
    h(
      'thead',
      null,
      h('tr', null, ['Instance', 'Public IP', 'State', 'Launched', 'Launched by', 'Owner', 'Expires', 'Type', ''].map((name) => h('th', { scope: 'col' }, name || h('span', { class: 'sr-only' }, 'Actions')))),
    ),
    tbody,
  );
  fill(
    ctx.main,
    h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Instances'), h('div', { class: 'head-actions' }, refreshButton, link('/ui/launch', { class: 'button primary' }, 'Launch an instance'))),
    h('p', { class: 'muted' }, 'Every instance tagged ManagedBy: ec2-api that is not terminated, as EC2 reports it now.'),
    deletions,
    state,
    h('div', { class: 'table-wrap' }, table),
  );

  let closed = false;
  let instances: Instance[] = [];
  /** Delete tasks started from this page, by task id; their rows follow them on the feed. */
  const tracked = new Map<string, { task: Task; instance: Instance; item: HTMLElement }>();
  /** The latest status of every task seen on the feed: a delete's events can arrive before its 202 does. */
  const seen = new Map<string, Task>();
  /**
   * One read of EC2 at a time: each is an ansible-playbook run (about a
   * CPU-second). Asked again while one runs, it runs once more afterwards.
   */
  let inFlight = false;
  let again = false;

  const load = async () => {
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    refreshButton.disabled = true;
    refreshButton.textContent = 'Reading EC2…';
    if (!instances.length) fill(state, 'Reading the instances from EC2…');
    try {
      const { body } = await api<{ instances: Instance[] }>('/instances');
      if (closed) return;
      instances = body.instances.sort((a, b) => (b.launch_time ?? '').localeCompare(a.launch_time ?? ''));
      renderTable();
    } catch (error) {
      if (closed) return;
      fill(state, h('span', { class: 'error-text' }, `Could not read the instances: ${(error as ApiError).message}`));
    } finally {
      inFlight = false;
      if (!closed) {
        refreshButton.disabled = false;
        refreshButton.textContent = 'Refresh';
        if (again) {
          again = false;
          void load();
        }
      }
    }
  };

  const deleting = (instance: Instance) => [...tracked.values()].find((d) => d.instance.instance_id === instance.instance_id && !isTerminal(d.task.status));

  const renderTable = () => {
    table.hidden = instances.length === 0;
    fill(
      state,
      instances.length === 0
        ? ['No instances: this service has nothing running. ', link('/ui/launch', null, 'Launch one')]
        : `${instances.length} ${instances.length === 1 ? 'instance' : 'instances'}, newest first.`,
    );
    const focused = document.activeElement instanceof HTMLElement ? document.activeElement.dataset.instance : undefined;
    fill(
      tbody,
      instances.map((instance) => {
        const busy = deleting(instance);
        const canTerminate = Boolean(instance.public_ip) && !busy && !['shutting-down', 'terminated'].includes(instance.state);
        const label = `Terminate ${instance.instance_id}${instance.public_ip ? ` (${instance.public_ip})` : ''}`;
        return h(
          'tr',
          { 'data-instance-id': instance.instance_id },
          cell('Instance', null, h('span', { class: 'mono' }, instance.instance_id), instance.name && instance.name !== `ec2-api-${instance.task_id}` ? h('span', { class: 'small block muted' }, instance.name) : null),
          cell('Public IP', null, instance.public_ip ? h('span', { class: 'mono' }, instance.public_ip) : h('span', { class: 'muted' }, 'none')),
          cell('State', null, h('span', { class: `state state-${instance.state}` }, busy ? 'terminating…' : instance.state)),
          cell('Launched', null, timeElement(instance.launch_time)),
          cell(
            'Launched by',
            null,
            instance.task_id
              ? link(`/ui/tasks/${encodeURIComponent(instance.task_id)}`, { class: 'mono small', 'aria-label': `the task that launched it, ${instance.task_id}` }, `task …${instance.task_id.slice(-8)}`)
              : h('span', { class: 'muted' }, 'by hand'),
          ),
          cell('Owner', null, instance.created_by ?? h('span', { class: 'muted' }, '—')),
          cell('Expires', null, countdownElement(instance.expires_at)),
          cell('Type', null, instance.instance_type ?? '—'),
          h(
            'td',
            { class: 'row-actions' },
            extendControl(instance, canTerminate),
            h(
              'button',
              {
                type: 'button',
                class: 'danger',
                'data-instance': instance.instance_id,
                disabled: !canTerminate,
                'aria-label': label,
                title: instance.public_ip ? label : 'It has no public IP: the API terminates by IP. Cancel the task that launched it instead.',
                onclick: () => void terminate(instance),
              },
              busy ? 'Terminating…' : 'Terminate…',
            ),
          ),
        );
      }),
    );
    if (focused) tbody.querySelector<HTMLElement>(`[data-instance="${CSS.escape(focused)}"]`)?.focus();
  };

  /** A lifetime to pick, and Extend: the instance is then terminated that long from now. */
  const extendControl = (instance: Instance, live: boolean) => {
    const choice = h(
      'select',
      { 'aria-label': `New lifetime of ${instance.instance_id}`, disabled: !live },
      EXTEND_CHOICES.map(([label, seconds]) => h('option', { value: String(seconds) }, label)),
    );
    const button = h(
      'button',
      { type: 'button', 'data-extend': instance.instance_id, disabled: !live, onclick: () => void extend(instance, Number(choice.value), button) },
      'Extend',
    );
    return h('span', { class: 'extend' }, choice, ' ', button);
  };

  const extend = async (instance: Instance, ttl: number, button: HTMLButtonElement) => {
    if (!instance.public_ip) return;
    button.disabled = true;
    try {
      const { body } = await api<{ expires_at: string }>(`/instances/${encodeURIComponent(instance.public_ip)}`, { method: 'PATCH', json: { ttl } });
      if (closed) return;
      instance.expires_at = body.expires_at;
      announce(`${instance.instance_id} now expires at ${new Date(body.expires_at).toLocaleString()}.`);
      renderTable();
    } catch (error) {
      if (closed) return;
      button.disabled = false;
      fill(state, h('span', { class: 'error-text' }, `Could not extend ${instance.instance_id}: ${(error as ApiError).message}`));
    }
  };

  const terminate = async (instance: Instance) => {
    const sure = await confirmDialog({
      title: 'Terminate this instance?',
      body: [
        h('p', null, 'Instance ', h('span', { class: 'mono' }, instance.instance_id), ' at ', h('span', { class: 'mono' }, instance.public_ip ?? ''), '.'),
        h('p', null, 'EC2 shuts it down and deletes it with its disk. This cannot be undone.'),
      ],
      confirm: 'Terminate it',
      keep: 'Keep it',
    });
    if (!sure || closed || !instance.public_ip) return;
    try {
      const { body } = await api<Task>(`/instances/${encodeURIComponent(instance.public_ip)}`, { method: 'DELETE' });
      const latest = seen.get(body.task_id) ?? body;
      const item = h('div', { class: 'deletion', 'data-task-id': body.task_id });
      tracked.set(body.task_id, { task: latest, instance, item });
      deletions.hidden = false;
      deletions.prepend(item);
      renderDeletion(body.task_id);
      renderTable();
      tbody.querySelector<HTMLElement>(`[data-instance="${CSS.escape(instance.instance_id)}"]`)?.focus();
    } catch (error) {
      const e = error as ApiError;
      const item = h('div', { class: 'deletion failed' }, h('p', { class: 'error-text' }, `Could not terminate ${instance.instance_id}: ${e.message}`));
      deletions.hidden = false;
      deletions.prepend(item);
    }
  };

  const renderDeletion = (taskId: string) => {
    const entry = tracked.get(taskId);
    if (!entry) return;
    const { task, instance, item } = entry;
    const done = isTerminal(task.status);
    fill(
      item,
      statusBadge(task.status),
      ' ',
      h('strong', null, `Terminate ${instance.instance_id}`),
      ` (${instance.public_ip}): `,
      h('span', { 'data-testid': 'deletion-progress' }, done ? (task.status === 'succeeded' ? 'terminated.' : task.error ?? task.status) : `${progressText(task)}.`),
      ' ',
      link(`/ui/tasks/${encodeURIComponent(task.task_id)}`, { 'aria-label': `the delete task ${task.task_id}` }, 'Task page'),
    );
    item.className = `deletion status-${task.status}`;
  };

  /** A burst of tasks ending (a batch) becomes one read of EC2, once it has been quiet for a moment. */
  let reloadTimer: number | undefined;
  const reloadSoon = () => {
    window.clearTimeout(reloadTimer);
    reloadTimer = window.setTimeout(() => void load(), 1_000);
  };

  const onEvent = (event: FeedEvent) => {
    if (event.type === 'status') {
      const { at: _at, ...task } = event.data;
      seen.set(task.task_id, task);
      const entry = tracked.get(task.task_id);
      if (entry) {
        const was = entry.task.status;
        entry.task = task;
        renderDeletion(task.task_id);
        if (isTerminal(task.status) && !isTerminal(was)) {
          announce(task.status === 'succeeded' ? `${entry.instance.instance_id} is terminated.` : `Terminating ${entry.instance.instance_id} ${task.status}.`);
          renderTable();
        }
      }
      // Something was launched or terminated: what EC2 holds has changed.
      if (isTerminal(task.status) && (task.instance_id || task.action === 'delete')) reloadSoon();
    } else if (event.type === 'step_start') {
      const entry = tracked.get(event.data.task_id);
      if (entry) {
        entry.task = { ...entry.task, progress: { step: event.data.step, of: event.data.of, name: event.data.name } };
        renderDeletion(event.data.task_id);
      }
    }
  };
  const unsubscribe = feed.subscribe(null, { event: onEvent });
  void load();
  const ticker = window.setInterval(() => tickCountdowns(tbody), 1_000);

  return () => {
    closed = true;
    unsubscribe();
    window.clearInterval(ticker);
    window.clearTimeout(reloadTimer);
  };
};
