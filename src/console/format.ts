// Words and numbers as people read them: statuses with a symbol and a word
// (never colour alone), times, durations, and what a cancel will do.
import { h } from './dom.js';
import type { Task, TaskStatus as Status } from '../api/documents.js';

const SYMBOL: Record<Status, string> = {
  queued: '○',
  running: '◐',
  succeeded: '✓',
  failed: '✕',
  canceled: '⊘',
};

/** A status as a badge: symbol (decorative) and word, coloured by CSS. */
export function statusBadge(status: Status): HTMLElement {
  return h('span', { class: `badge status-${status}` }, h('span', { class: 'symbol', 'aria-hidden': 'true' }, SYMBOL[status] ?? '?'), ` ${status}`);
}

const pad = (n: number) => String(n).padStart(2, '0');

/** Local time: "14:03:07" today, "27 Nov 14:03" otherwise. */
export function clock(iso: string | null): string {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const now = new Date();
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  if (date.toDateString() === now.toDateString()) return time;
  const month = date.toLocaleString('en-GB', { month: 'short' });
  const year = date.getFullYear() === now.getFullYear() ? '' : ` ${date.getFullYear()}`;
  return `${date.getDate()} ${month}${year} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A `<time>` element: local clock as text, the exact instant in datetime and title. */
export function timeElement(iso: string | null): HTMLElement {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: new Date(iso).toString() }, clock(iso));
}

/** "850 ms", "4.2 s", "3 min 05 s", "1 h 02 min". */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 0) ms = 0;
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
}

/** How long a task ran (or has been running), or null before it started. */
export function taskDuration(task: Task, now = serverNow()): number | null {
  if (!task.started_at) return null;
  const end = task.finished_at ? Date.parse(task.finished_at) : now;
  return end - Date.parse(task.started_at);
}

export function shortId(id: string): string {
  return id.slice(-8);
}

export const canCancel = (task: Task) => task.status === 'queued' || task.status === 'running';

/** What POST /tasks/<id>/cancel will do to this task, in a sentence. */
export function cancelConsequence(task: Task): string {
  if (task.status === 'queued') return 'It has not started: it is taken off the queue and will never run.';
  if (task.action === 'create') {
    return 'Its playbook is stopped, and the instance it launched (if it got that far) will be terminated, so nothing is left running.';
  }
  return 'Its playbook is stopped. If it has already asked EC2 to terminate the instance, the termination still goes ahead.';
}

/** "Create" or "Delete 54.1.2.3": what a task does, in words. */
export function taskTitle(task: Task): string {
  return task.action === 'create' ? 'Create instance' : `Delete ${task.ip ?? 'instance'}`;
}

/** Progress in words: "Step 1 of 4: Launch one instance per task". */
export function progressText(task: Task): string {
  const p = task.progress;
  switch (task.status) {
    case 'queued':
      return 'Waiting for a free playbook worker';
    case 'running':
      return p ? `Step ${p.step} of ${p.of}: ${p.name}` : 'Starting the playbook';
    case 'succeeded':
      return task.action === 'create' ? 'Launched' : 'Terminated';
    case 'failed':
      return 'Failed';
    case 'canceled':
      return 'Canceled';
  }
}

/**
 * The server's clock, estimated from event times: the smallest (receive time
 * − event time) seen is the skew plus the least latency. Running bars and
 * durations use it, so a browser whose clock is off still shows true lengths.
 */
let skew: number | null = null;
export function noteServerTime(iso: string | null | undefined): void {
  if (!iso) return;
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return;
  const seen = Date.now() - at;
  if (skew === null || seen < skew) skew = seen;
}
export const serverNow = () => Date.now() - (skew ?? 0);

/** Time left until `iso`: "1 h 59 min", "4 min 05 s"; "due now" once it has passed. */
export function countdown(iso: string, now = serverNow()): string {
  const left = Date.parse(iso) - now;
  return left > 0 ? `in ${duration(left)}` : 'due now';
}

/** An instance's expiry as a countdown, kept current by `tickCountdowns`; "never" without one. */
export function countdownElement(iso: string | null): HTMLElement {
  if (!iso) return h('span', { class: 'muted' }, 'never');
  return h('time', { datetime: iso, title: `terminated at ${new Date(iso).toString()}`, 'data-expires': iso }, countdown(iso));
}

/** Moves every countdown under `root` on (call it each second). */
export function tickCountdowns(root: ParentNode): void {
  for (const element of root.querySelectorAll<HTMLElement>('[data-expires]')) element.textContent = countdown(element.dataset.expires!);
}
