// What goes to the terminal: results on stdout (an IP, a task id, a table,
// or the API's JSON with --json), everything meant for a person on stderr.
// Tables and colour only on a terminal; tab-separated lines when piped;
// no colour when NO_COLOR is set.
import type { Task } from '../api/documents.js';

export interface Output {
  /** --json: print the API's JSON documents, nothing else, on stdout. */
  json: boolean;
  /** stdout is a terminal: tables with headers, aligned. */
  tty: boolean;
  /** stderr is a terminal: live progress bars. */
  errTty: boolean;
  color: boolean;
  out(line: string): void;
  err(line: string): void;
}

export function output(json: boolean, env: NodeJS.ProcessEnv = process.env): Output {
  const tty = process.stdout.isTTY === true;
  const errTty = process.stderr.isTTY === true;
  return {
    json,
    tty,
    errTty,
    color: tty && !('NO_COLOR' in env && env.NO_COLOR !== '') && env.TERM !== 'dumb',
    out: (line) => void process.stdout.write(`${line}\n`),
    err: (line) => void process.stderr.write(`${line}\n`),
  };
}

const SGR = { bold: [1, 22], dim: [2, 22], red: [31, 39], green: [32, 39], yellow: [33, 39], cyan: [36, 39] } as const;
export type Style = keyof typeof SGR;

export function paint(o: Pick<Output, 'color'>, style: Style, text: string): string {
  if (!o.color || !text) return text;
  const [on, off] = SGR[style];
  return `\u001b[${on}m${text}\u001b[${off}m`;
}

const STATUS_STYLE: Record<Task['status'], Style> = { queued: 'dim', running: 'cyan', succeeded: 'green', failed: 'red', canceled: 'yellow' };
export const paintStatus = (o: Pick<Output, 'color'>, status: Task['status']) => paint(o, STATUS_STYLE[status], status);

export const printJson = (o: Output, value: unknown) => o.out(JSON.stringify(value, null, 2));

// eslint-disable-next-line no-control-regex
const visibleLength = (text: string) => text.replace(/\u001b\[[0-9;]*m/g, '').length;

/**
 * Rows as an aligned table with a header on a terminal; piped, one
 * tab-separated line per row and no header, for cut and awk.
 */
export function printTable(o: Output, headers: string[], rows: string[][]): void {
  rows = rows.map((row) => row.map((cell) => cell.replace(/\s*[\t\r\n]\s*/g, ' ')));
  if (!o.tty) {
    for (const row of rows) o.out(row.join('\t'));
    return;
  }
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => visibleLength(row[i] ?? ''))));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat(widths[i]! - visibleLength(cell))))
      .join('  ')
      .trimEnd();
  o.out(paint(o, 'bold', line(headers)));
  for (const row of rows) o.out(line(row));
}

/** An ISO time as people read it on a terminal (UTC, to the second); as given when piped. */
export function when(o: Pick<Output, 'tty'>, iso: string | null | undefined): string {
  if (!iso) return '-';
  return o.tty ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : iso;
}

export function progressText(task: Pick<Task, 'progress'>): string {
  return task.progress ? `step ${task.progress.step}/${task.progress.of}: ${task.progress.name}` : '';
}

/** One task, a field a line. */
export function printTask(o: Output, task: Task): void {
  const rows: [string, string][] = [
    ['task', task.task_id],
    ['action', task.action],
    ['status', paintStatus(o, task.status) + (task.status === 'running' && task.progress ? ` (${progressText(task)})` : '')],
    ['ip', task.ip ?? '-'],
    ['instance', task.instance_id ? `${task.instance_id}${task.instance_state ? ` (${task.instance_state})` : ''}` : (task.instance_state ?? '-')],
    ['created', when(o, task.created_at)],
    ['started', when(o, task.started_at)],
    ['finished', when(o, task.finished_at)],
    ['attempts', String(task.attempts)],
    ['by', task.created_by + (task.reason ? ` (${task.reason})` : '')],
  ];
  if (task.expires_at) rows.push(['expires', when(o, task.expires_at)]);
  if (task.error) rows.push(['error', paint(o, 'red', task.error)]);
  const width = Math.max(...rows.map(([key]) => key.length));
  for (const [key, value] of rows) o.out(`${paint(o, 'dim', key.padEnd(width))}  ${value}`);
}
