// ec2-api health: which EC2 the service talks to, its queue, and whether it is ready.
import type { Command } from 'commander';
import { expectOk, refusal } from '../client.js';
import { CliError, EXIT } from '../errors.js';
import { paint, printJson, type Output } from '../output.js';
import type { Health, Readiness } from '../../api/documents.js';
import { command, setup, type CommonOptions } from './common.js';

function printHealth(o: Output, url: string, health: Health, ready: Readiness): void {
  const { cloud } = health;
  const rows: [string, string][] = [
    ['server', url],
    ['ec2', paint(o, cloud.kind === 'aws' ? 'bold' : 'yellow', cloud.description)],
    ['', `${cloud.kind}, region ${cloud.region}${cloud.endpoint ? `, endpoint ${cloud.endpoint}` : ''}`],
    ['intake', `${health.accepting ? 'accepting tasks' : paint(o, 'red', 'not accepting tasks (shutting down)')}${health.paused ? paint(o, 'yellow', '; paused: no playbook starts (EC2_API_PAUSED)') : ''}`],
    ['queue', `${health.queued} queued, ${health.running_playbooks} playbook${health.running_playbooks === 1 ? '' : 's'} running`],
    ['ready', ready.status === 'ready' ? paint(o, 'green', 'yes') : paint(o, 'red', `no: ${ready.error ?? 'not ready'}`)],
  ];
  for (const [name, check] of Object.entries(ready.checks) as [string, { ok: boolean; error?: string; version?: string; endpoint?: string }][]) {
    const extra = check.version ?? check.endpoint;
    rows.push([`  ${name}`, check.ok ? `ok${extra ? ` (${extra})` : ''}` : paint(o, 'red', `failed: ${check.error ?? 'unknown'}`)]);
  }
  const width = Math.max(...rows.map(([key]) => key.length));
  for (const [key, value] of rows) o.out(`${paint(o, 'dim', key.padEnd(width))}  ${value}`);
}

export function healthCommand(): Command {
  return command('health', 'which EC2 the service talks to (local emulator or AWS, region), its queue, and readiness')
    .addHelpText(
      'after',
      `
Exit 0 when the service is ready, 1 when a readiness check fails (database,
ansible-playbook or the EC2 endpoint), 3 when it cannot be reached.
With --json: {"healthz": <GET /healthz>, "readyz": <GET /readyz>}.`,
    )
    .action(async (options: CommonOptions) => {
      const { conn, o } = setup(options);
      const { data: health } = await expectOk(conn, conn.api.GET('/healthz'));
      const answer = await conn.api.GET('/readyz');
      const ready: Readiness | undefined =
        answer.response.status === 503 ? (answer.error as Readiness | undefined) : answer.response.ok ? answer.data : undefined;
      if (!ready || !('checks' in ready)) throw refusal(conn, answer.response, answer.error);
      if (o.json) printJson(o, { healthz: health, readyz: ready });
      else printHealth(o, conn.url, health, ready);
      if (ready.status !== 'ready') throw new CliError(`ec2-api at ${conn.url} is ${ready.error ?? 'not ready'}`, EXIT.failed);
    });
}
