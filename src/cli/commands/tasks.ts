// ec2-api tasks: the newest tasks, filtered, as a table.
import { Option, type Command } from 'commander';
import { expectOk } from '../client.js';
import { usageError } from '../errors.js';
import { paint, paintStatus, printJson, printTable, progressText, when } from '../output.js';
import type { Task, TaskAction, TaskStatus } from '../../api/documents.js';
import { ACTIONS, STATUSES } from '../../api/vocabulary.js';
import { command, setup, taskId, type CommonOptions } from './common.js';

interface TasksOptions extends CommonOptions {
  status?: TaskStatus;
  action?: TaskAction;
  limit?: number;
  cursor?: string;
}

function limit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 500) throw usageError(`--limit takes a number from 1 to 500, not "${value}"`);
  return n;
}

/** What a task is doing or why it ended, in a few words. */
function detail(task: Task): string {
  if (task.status === 'running') return progressText(task);
  if (task.error) return task.error;
  return task.instance_id ? `${task.instance_id}${task.instance_state ? ` ${task.instance_state}` : ''}` : '';
}

export function tasksCommand(): Command {
  return command('tasks', 'list tasks, newest first')
    .addOption(new Option('--status <status>', 'only tasks with this status').choices(STATUSES))
    .addOption(new Option('--action <action>', 'only create or only delete tasks').choices(ACTIONS))
    .addOption(new Option('--limit <n>', 'at most this many (1–500)').argParser(limit).default(20, '20'))
    .addOption(new Option('--cursor <task-id>', 'the page after this task (as printed at the end of the previous page)').argParser(taskId))
    .addHelpText(
      'after',
      `
On a terminal, a table; piped, one tab-separated line per task and no header:
  task-id  action  status  ip  created-at  detail (step, error or instance)`,
    )
    .action(async (options: TasksOptions) => {
      const { conn, o } = setup(options);
      const query = {
        ...(options.status ? { status: options.status } : {}),
        ...(options.action ? { action: options.action } : {}),
        ...(options.cursor ? { cursor: options.cursor } : {}),
        limit: String(options.limit ?? 20),
      };
      const { data: list } = await expectOk(conn, conn.api.GET('/tasks', { params: { query } }));
      if (o.json) return printJson(o, list);
      printTable(
        o,
        ['TASK', 'ACTION', 'STATUS', 'IP', 'CREATED', 'DETAIL'],
        list.tasks.map((task) => [
          task.task_id,
          task.action,
          paintStatus(o, task.status),
          task.ip ?? (o.tty ? '-' : ''),
          when(o, task.created_at),
          task.status === 'failed' ? paint(o, 'red', detail(task)) : detail(task),
        ]),
      );
      if (o.tty && list.tasks.length === 0) o.err('no tasks match');
      if (o.tty && list.next_cursor) o.err(paint(o, 'dim', `more: ec2-api tasks --cursor ${list.next_cursor}`));
    });
}
