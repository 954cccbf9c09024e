// What every command shares: --url and --json, the connection and output
// they give, argument checks, and how a task that did not succeed is said.
import { Command } from 'commander';
import { connect, type Connection } from '../client.js';
import { CliError, EXIT, usageError } from '../errors.js';
import { output, type Output } from '../output.js';
import type { Task } from '../../api/documents.js';

export interface CommonOptions {
  url?: string;
  json?: boolean;
}

export function command(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .option('--url <url>', 'the ec2-api server (default: $EC2_API_URL, else http://127.0.0.1:5000)')
    .option('--json', "print the API's JSON on stdout instead of text (for scripts)");
}

export function setup(options: CommonOptions): { conn: Connection; o: Output } {
  return { conn: connect(options.url), o: output(options.json === true) };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function taskId(value: string): string {
  if (!UUID.test(value)) throw usageError(`"${value}" is not a task id: give a UUID such as 01a21c5a-6dbb-7575-a344-8105e40c2f30 (see \`ec2-api tasks\`)`);
  return value.toLowerCase();
}

export function ipAddress(value: string): string {
  if (!IPV4.test(value)) throw usageError(`"${value}" is not an IPv4 address: give the instance's public IP, such as 54.214.104.69 (see \`ec2-api instances\`)`);
  return value;
}

/** Exit 1 with the task's own reason, and where to read more. */
export function taskDidNotSucceed(task: Task): CliError {
  const what = `${task.action} task ${task.task_id}`;
  const reason = task.error ?? 'no reason given';
  const ended = task.status === 'canceled' ? 'was canceled' : task.status;
  return new CliError(`${what} ${ended}: ${reason} (playbook log: \`ec2-api logs ${task.task_id}\`)`, EXIT.failed);
}
