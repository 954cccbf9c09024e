// ec2-api delete <ip>: queue a termination; with --wait follow it to the end.
import { Argument, type Command } from 'commander';
import { expectOk } from '../client.js';
import { CliError, EXIT } from '../errors.js';
import { printJson } from '../output.js';
import { waitForTask } from '../wait.js';
import { command, ipAddress, setup, taskDidNotSucceed, type CommonOptions } from './common.js';

interface DeleteOptions extends CommonOptions {
  wait?: boolean;
}

export function deleteCommand(): Command {
  return command('delete', 'terminate the managed instance with this public IP (queue a delete task)')
    .addArgument(new Argument('<ip>', "the instance's public IP").argParser(ipAddress))
    .option('--wait', 'show the playbook\'s progress until the instance is terminated')
    .addHelpText(
      'after',
      `
Prints the task id, or with --wait the terminated instance's id (stdout).
Exit 1 when no instance this service launched has that IP, or the delete failed.
Only instances this service launched (tagged ManagedBy: ec2-api) are touched.`,
    )
    .action(async (ip: string, options: DeleteOptions) => {
      const { conn, o } = setup(options);
      const { data: task } = await expectOk(conn, conn.api.DELETE('/instances/{ip}', { params: { path: { ip } } }));
      const id = task.task_id;
      if (!options.wait) {
        if (o.json) printJson(o, task);
        else o.out(id);
        o.err(`queued delete task ${id}: follow it with \`ec2-api status ${id}\``);
        return;
      }
      const final = await waitForTask(conn, o, task);
      if (o.json) printJson(o, final);
      if (final.status === 'failed' && final.instance_state === 'not_found') {
        throw new CliError(`${final.error ?? `no managed instance has public IP ${ip}`} (see \`ec2-api instances\`)`, EXIT.failed);
      }
      if (final.status !== 'succeeded') throw taskDidNotSucceed(final);
      if (!o.json) {
        o.err(`terminated ${final.instance_id ?? 'the instance'} (${ip})`);
        o.out(final.instance_id ?? ip);
      }
    });
}
