// ec2-api logs <task-id> [--follow]: the playbook output, live until the task ends.
import { Argument, Option, type Command } from 'commander';
import { expectOk, taskWording, type Connection } from '../client.js';
import { CliError, EXIT } from '../errors.js';
import type { Output } from '../output.js';
import { command, setup, taskId, type CommonOptions } from './common.js';

interface LogsOptions extends CommonOptions {
  follow?: boolean;
  interval: number;
}

interface Chunk {
  task_id: string;
  offset: number;
  length: number;
  complete: boolean;
  log: string;
}

async function read(conn: Connection, id: string, offset: number, signal?: AbortSignal): Promise<Chunk> {
  const { data, response } = await expectOk(
    conn,
    conn.api.GET('/tasks/{id}/log', { params: { path: { id }, query: offset ? { offset: String(offset) } : {} }, parseAs: 'text', signal }),
    taskWording(id),
  );
  const length = Number(response.headers.get('x-log-length') ?? offset + data.length);
  return { task_id: id, offset, length, complete: response.headers.get('x-log-complete') === 'true', log: data };
}

function print(o: Output, chunk: Chunk, lines: boolean): void {
  if (o.json) o.out(lines ? JSON.stringify(chunk) : JSON.stringify(chunk, null, 2));
  else if (chunk.log) process.stdout.write(chunk.log);
}

export function logsCommand(): Command {
  return command('logs', "print a task's playbook output; with --follow, live until the task ends")
    .addArgument(new Argument('<task-id>', 'the task').argParser(taskId))
    .option('-f, --follow', 'keep printing new output until the task ends')
    .addOption(new Option('--interval <seconds>', 'how often --follow asks for new output').argParser(Number).default(1).hideHelp())
    .addHelpText(
      'after',
      `
Tasks that ran in one batch share one playbook run, and so its output.
With --json: {"task_id", "offset", "length", "complete", "log"}; with
--follow --json, one such object per line for each new piece.`,
    )
    .action(async (id: string, options: LogsOptions) => {
      const { conn, o } = setup(options);
      let chunk = await read(conn, id, 0);
      print(o, chunk, options.follow === true);
      if (!options.follow) return;

      const controller = new AbortController();
      const stop = () => controller.abort();
      process.on('SIGINT', stop);
      try {
        while (!chunk.complete) {
          await new Promise((resolve) => setTimeout(resolve, Math.max(0.1, options.interval) * 1000));
          if (controller.signal.aborted) break;
          const offset = chunk.length;
          chunk = await read(conn, id, offset, controller.signal);
          if (chunk.length < offset) {
            // Shorter than what was printed: the task's run started over (it was requeued).
            o.err(`task ${id} is running again (it was requeued): its new output follows from the start`);
            chunk = await read(conn, id, 0, controller.signal);
          }
          if (chunk.log || o.json) print(o, chunk, true);
        }
      } catch (error) {
        if (!controller.signal.aborted) throw error;
      } finally {
        process.off('SIGINT', stop);
      }
      if (controller.signal.aborted) {
        throw new CliError(`stopped following the log; task ${id} goes on (cancel it with \`ec2-api cancel ${id}\`)`, EXIT.interrupted);
      }
    });
}
