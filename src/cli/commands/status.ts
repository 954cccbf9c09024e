// ec2-api status <task-id>: one task.
import { Argument, type Command } from 'commander';
import { expectOk, taskWording } from '../client.js';
import { printJson, printTask } from '../output.js';
import { command, setup, taskId, type CommonOptions } from './common.js';

export function statusCommand(): Command {
  return command('status', 'show one task: its status, playbook step, IP, instance and error')
    .addArgument(new Argument('<task-id>', 'the task').argParser(taskId))
    .addHelpText('after', "\nExit 0 whenever the task was found, whatever its status (read it from --json's \"status\").")
    .action(async (id: string, options: CommonOptions) => {
      const { conn, o } = setup(options);
      const { data: task } = await expectOk(conn, conn.api.GET('/tasks/{id}', { params: { path: { id } } }), taskWording(id));
      if (o.json) printJson(o, task);
      else printTask(o, task);
    });
}
