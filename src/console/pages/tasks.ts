// The live task list: newest first, filters by status and action, pages on
// the API's cursor, every row updating from the feed as its task moves.
import { api, ApiError } from '../api.js';
import { announce, cell, fill, h, link } from '../dom.js';
import { feed, type FeedEvent } from '../feed.js';
import { duration, progressText, statusBadge, taskDuration, taskTitle, timeElement } from '../format.js';
import type { Page } from '../page.js';
import type { Task, TaskAction as Action, TaskList, TaskStatus as Status } from '../../api/documents.js';
import { isTerminal } from '../../api/lifecycle.js';
import { ACTIONS, STATUSES } from '../../api/vocabulary.js';

const PAGE_SIZE = 25;
/** On the live first page, the oldest rows go once there are this many (they are on the next page). */
const LIVE_MAX = 200;

export const tasksPage: Page = (ctx) => {
  let status = STATUSES.includes(ctx.query.get('status') as Status) ? (ctx.query.get('status') as Status) : null;
  let action = ACTIONS.includes(ctx.query.get('action') as Action) ? (ctx.query.get('action') as Action) : null;
  let cursor = /^[0-9a-f-]{36}$/i.test(ctx.query.get('cursor') ?? '') ? ctx.query.get('cursor') : null;
  // ?limit= sets the page size, within the API's bounds.
  const given = Number(ctx.query.get('limit'));
  const limit = Number.isInteger(given) && given >= 1 && given <= 500 ? given : null;
  ctx.title(cursor ? 'Older tasks' : 'Tasks');

  const url = (changes: Record<string, string | null>) => {
    const query = new URLSearchParams();
    const next = { status, action, cursor, limit: limit ? String(limit) : null, ...changes };
    for (const [key, value] of Object.entries(next)) if (value) query.set(key, value);
    const text = query.toString();
    return `/ui/tasks${text ? `?${text}` : ''}`;
  };

  const select = (id: string, label: string, values: readonly string[], current: string | null, key: string) =>
    h(
      'div',
      { class: 'field inline' },
      h('label', { for: id }, label),
      h(
        'select',
        { id, name: key, onchange: (event: Event) => applyFilter(key, (event.target as HTMLSelectElement).value || null) },
        h('option', { value: '', selected: current === null }, 'all'),
        values.map((value) => h('option', { value, selected: current === value }, value)),
      ),
    );

  const heading = h('h1', { tabindex: '-1' }, cursor ? 'Older tasks' : 'Tasks');
  const state = h('p', { class: 'list-state', role: 'status' }, 'Loading tasks…');
  const clear = h('button', { type: 'button', class: 'subtle', hidden: !status && !action, onclick: () => applyFilter(null, null) }, 'Clear filters');
  const notice = h('div', { class: 'notice-slot' });
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'tasks', 'aria-describedby': 'tasks-caption' },
    h('caption', { id: 'tasks-caption', class: 'sr-only' }, 'Tasks, newest first. Status, what the task does, its progress or error, its instance, when it was created and how long it took.'),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Task'), h('th', { scope: 'col' }, 'Progress'), h('th', { scope: 'col' }, 'Instance'), h('th', { scope: 'col' }, 'Created'), h('th', { scope: 'col', class: 'num' }, 'Took'))),
    tbody,
  );
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of tasks' });

  fill(
    ctx.main,
    h('div', { class: 'page-head' }, heading, link('/ui/launch', { class: 'button primary' }, 'Launch an instance')),
    h(
      'form',
      { class: 'filters', role: 'search', 'aria-label': 'Filter tasks', onsubmit: (event: Event) => event.preventDefault() },
      select('filter-status', 'Status', STATUSES, status, 'status'),
      select('filter-action', 'Action', ACTIONS, action, 'action'),
      clear,
    ),
    state,
    notice,
    h('div', { class: 'table-wrap' }, table),
    pager,
  );

  interface Row {
    task: Task;
    tr: HTMLTableRowElement;
    took: HTMLElement;
  }
  const rows = new Map<string, Row>();
  let nextCursor: string | null = null;
  let unsubscribe: () => void = () => undefined;
  let aborted = false;
  const controller = new AbortController();

  const matches = (task: Task) => (!status || task.status === status) && (!action || task.action === action);

  const renderRow = (task: Task): Row => {
    const took = h('span', null, duration(taskDuration(task)));
    const progress = task.progress;
    const progressCell = cell(
      'Progress',
      { class: 'progress-cell' },
      task.status === 'running' && progress
        ? h('progress', { max: progress.of, value: progress.step, 'aria-hidden': 'true' })
        : null,
      h('span', { class: 'progress-text' }, progressText(task)),
      task.error && task.status !== 'succeeded' ? h('p', { class: `row-error ${task.status === 'failed' ? 'is-failure' : ''}` }, task.error) : null,
    );
    const instance = cell(
      'Instance',
      null,
      task.ip ? h('span', { class: 'mono' }, task.ip) : null,
      task.instance_id ? h('span', { class: 'mono small block' }, task.instance_id) : null,
      !task.ip && !task.instance_id ? h('span', { class: 'muted' }, '—') : null,
      task.instance_state ? h('span', { class: 'small block muted' }, task.instance_state) : null,
    );
    const tr = h(
      'tr',
      { 'data-task-id': task.task_id, 'data-status': task.status, class: `row-${task.status}` },
      cell('Status', null, statusBadge(task.status)),
      cell(
        'Task',
        null,
        link(`/ui/tasks/${encodeURIComponent(task.task_id)}`, { class: 'task-link', 'aria-label': `${taskTitle(task)}, task ${task.task_id}, ${task.status}` }, taskTitle(task)),
        h('span', { class: 'mono small block id' }, task.task_id),
      ),
      progressCell,
      instance,
      cell('Created', null, timeElement(task.created_at)),
      cell('Took', { class: 'num' }, took),
    );
    return { task, tr, took };
  };

  const put = (task: Task) => {
    const old = rows.get(task.task_id);
    if (old && !matches(task)) {
      old.tr.remove();
      rows.delete(task.task_id);
      showEmpty();
      return;
    }
    const row = renderRow(task);
    if (old) {
      const hadFocus = old.tr.contains(document.activeElement);
      old.tr.replaceWith(row.tr);
      if (hadFocus) row.tr.querySelector<HTMLElement>('a')?.focus();
    } else {
      // Newest first: ids are UUIDv7, so they sort by creation time.
      const before = [...tbody.rows].find((tr) => (tr.dataset.taskId ?? '') < task.task_id);
      tbody.insertBefore(row.tr, before ?? null);
    }
    rows.set(task.task_id, row);
    if (!cursor && rows.size > LIVE_MAX) trimOldest();
    showEmpty();
  };

  const trimOldest = () => {
    const ordered = [...rows.values()].sort((a, b) => (a.task.task_id < b.task.task_id ? 1 : -1));
    for (const row of ordered.slice(LIVE_MAX)) {
      row.tr.remove();
      rows.delete(row.task.task_id);
    }
    nextCursor = ordered[LIVE_MAX - 1]!.task.task_id;
    renderPager();
  };

  const showEmpty = () => {
    table.hidden = rows.size === 0;
    if (rows.size === 0) {
      if (cursor) fill(state, status || action ? 'No older tasks match these filters.' : 'No older tasks.');
      else fill(state, status || action ? 'No tasks match these filters.' : 'No tasks yet. ', !status && !action ? link('/ui/launch', null, 'Launch an instance') : null);
    } else {
      fill(state, cursor ? 'Older tasks, newest first. Rows update live.' : 'Newest first. Rows update live as tasks move.');
    }
  };

  const renderPager = () => {
    fill(
      pager,
      cursor ? link(url({ cursor: null }), { class: 'button' }, '← Newest tasks') : null,
      nextCursor ? link(url({ cursor: nextCursor }), { class: 'button', rel: 'next' }, 'Older tasks →') : null,
    );
  };

  /** Terminal changes in a burst, said once: "2 tasks succeeded, 1 failed". */
  let ended: Record<string, number> = {};
  let endedTimer: number | undefined;
  const noteEnded = (task: Task) => {
    ended[task.status] = (ended[task.status] ?? 0) + 1;
    window.clearTimeout(endedTimer);
    endedTimer = window.setTimeout(() => {
      const parts = Object.entries(ended).map(([s, n]) => `${n} ${n === 1 ? 'task' : 'tasks'} ${s}`);
      ended = {};
      announce(parts.join(', '));
    }, 1_000);
  };

  let newer = 0;
  const onEvent = (event: FeedEvent) => {
    if (event.type === 'status') {
      const { at: _at, ...task } = event.data;
      const known = rows.get(task.task_id);
      if (known && isTerminal(task.status) && !isTerminal(known.task.status)) noteEnded(task);
      if (known || (matches(task) && !cursor)) put(task);
      else if (matches(task) && cursor && task.status === 'queued') {
        newer++;
        fill(notice, h('p', { class: 'notice' }, `${newer} new ${newer === 1 ? 'task' : 'tasks'} since this page was loaded. `, link(url({ cursor: null }), null, 'Show the newest')));
      }
    } else if (event.type === 'step_start') {
      const row = rows.get(event.data.task_id);
      if (row && row.task.status === 'running') put({ ...row.task, progress: { step: event.data.step, of: event.data.of, name: event.data.name } });
    }
  };

  /**
   * A new filter: the URL says it (a reload or a shared link keeps it) and the
   * list reloads in place, so the focus stays on the control the user is on.
   * Replaced, not pushed: arrowing through a select would flood the history.
   */
  const applyFilter = (key: string | null, value: string | null) => {
    if (key === 'status') status = value as Status | null;
    else if (key === 'action') action = value as Action | null;
    else {
      status = null;
      action = null;
      for (const id of ['filter-status', 'filter-action']) (document.getElementById(id) as HTMLSelectElement).value = '';
      document.getElementById('filter-status')?.focus();
    }
    cursor = null;
    heading.textContent = 'Tasks';
    ctx.title('Tasks');
    clear.hidden = !status && !action;
    ctx.replaceUrl(url({}));
    newer = 0;
    notice.replaceChildren();
    void load();
  };

  let loads = 0;
  const load = async () => {
    const mine = ++loads;
    unsubscribe();
    unsubscribe = () => undefined;
    const query = new URLSearchParams({ limit: String(limit ?? PAGE_SIZE) });
    if (status) query.set('status', status);
    if (action) query.set('action', action);
    if (cursor) query.set('cursor', cursor);
    try {
      const { body } = await api<TaskList>(`/tasks?${query}`, { signal: controller.signal });
      // A newer load (another filter) has started: this answer is stale.
      if (aborted || mine !== loads) return;
      tbody.replaceChildren();
      rows.clear();
      for (const task of body.tasks) put(task);
      nextCursor = body.next_cursor;
      renderPager();
      showEmpty();
      unsubscribe = feed.subscribe(body.last_event_id, { event: onEvent, gap: () => void load() });
    } catch (error) {
      if (aborted || mine !== loads || (error as Error).name === 'AbortError') return;
      table.hidden = true;
      fill(state, h('span', { class: 'error-text' }, `Could not list the tasks: ${(error as ApiError).message}`), ' ', h('button', { type: 'button', onclick: () => void load() }, 'Try again'));
    }
  };
  void load();

  const ticker = window.setInterval(() => {
    for (const row of rows.values()) if (row.task.status === 'running') row.took.textContent = duration(taskDuration(row.task));
  }, 1_000);

  return () => {
    aborted = true;
    controller.abort();
    unsubscribe();
    window.clearInterval(ticker);
    window.clearTimeout(endedTimer);
  };
};
