// ec2-api extend <ip> <duration>: the instance now expires that long from now.
import { Argument, type Command } from 'commander';
import { expectOk } from '../client.js';
import { parseDuration } from '../duration.js';
import { printJson, when } from '../output.js';
import { command, ipAddress, setup, type CommonOptions } from './common.js';

export function extendCommand(): Command {
  return command('extend', "move an instance's expiry: the service terminates it this long from now")
    .addArgument(new Argument('<ip>', "the instance's public IP").argParser(ipAddress))
    .addArgument(new Argument('<duration>', 'how long from now: 90m, 2h, 1d, 1d12h (a minute to 30 days)').argParser(parseDuration))
    .addHelpText(
      'after',
      `
Prints the new expiry time (stdout). An instance without an expiry gets one.

Example:
  ec2-api extend 54.214.104.69 2h`,
    )
    .action(async (ip: string, ttl: number, options: CommonOptions) => {
      const { conn, o } = setup(options);
      const { data } = await expectOk(conn, conn.api.PATCH('/instances/{ip}', { params: { path: { ip } }, body: { ttl } }));
      if (o.json) return printJson(o, data);
      o.err(`${data.instance_id ?? 'the instance'} (${ip}) is terminated at ${when(o, data.expires_at)}`);
      o.out(data.expires_at);
    });
}
