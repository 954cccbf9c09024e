// ec2-api instances: what this service manages, read from EC2, as a table.
import type { Command } from 'commander';
import { expectOk } from '../client.js';
import { printJson, printTable, when } from '../output.js';
import { command, setup, type CommonOptions } from './common.js';

export function instancesCommand(): Command {
  return command('instances', 'list the instances this service launched that are not terminated (read from EC2)')
    .addHelpText(
      'after',
      `
On a terminal, a table; piped, one tab-separated line per instance and no header:
  instance-id  public-ip  state  launched-at  type  task-id  owner  expires-at`,
    )
    .action(async (options: CommonOptions) => {
      const { conn, o } = setup(options);
      const { data } = await expectOk(conn, conn.api.GET('/instances'));
      if (o.json) return printJson(o, data);
      const dash = o.tty ? '-' : '';
      printTable(
        o,
        ['INSTANCE', 'IP', 'STATE', 'LAUNCHED', 'TYPE', 'TASK', 'OWNER', 'EXPIRES'],
        data.instances.map((i) => [
          i.instance_id,
          i.public_ip ?? dash,
          i.state,
          when(o, i.launch_time) || dash,
          i.instance_type ?? dash,
          i.task_id ?? dash,
          i.created_by ?? dash,
          i.expires_at ? when(o, i.expires_at) : dash,
        ]),
      );
      if (o.tty && data.instances.length === 0) o.err('no managed instances');
    });
}
