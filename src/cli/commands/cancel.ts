// ec2-api cancel <task-id>: stop a queued or running task (a create's instance is terminated).
import { Argument, type Command } from 'commander';
import { expectOk, taskWording } from '../client.js';
import { printJson } from '../output.js';
import { isTerminal } from '../../api/lifecycle.js';
import { command, setup, taskId, type CommonOptions } from './common.js';

export function cancelCommand(): Command {
  return command('cancel', 'cancel a queued or running task; a create that launched its instance has it terminated')
    .addArgument(new Argument('<task-id>', 'the task to cancel').argParser(taskId))
    .addHelpText('after', '\nExit 1 when the task has already ended or does not exist.')
    .action(async (id: string, options: CommonOptions) => {
      const { conn, o } = setup(options);
      const { data: task } = await expectOk(conn, conn.api.POST('/tasks/{id}/cancel', { params: { path: { id } } }), taskWording(id));
      if (o.json) return printJson(o, task);
      if (!isTerminal(task.status)) {
        o.out(`cancel requested: task ${id} is still being stopped and cleaned up; follow it with \`ec2-api status ${id}\``);
        return;
      }
      let what = '';
      if (task.started_at === null) what = '; it had not started';
      else if (task.action === 'create' && task.instance_state === 'terminated') {
        what = `; the instance it launched (${task.instance_id ?? '?'}) was terminated`;
      } else if (task.action === 'create' && task.instance_state === 'not_found') what = '; it had launched no instance';
      o.out(`canceled ${task.action} task ${id}${what}`);
    });
}
