// ec2-api create: queue a launch; with --wait follow it and print the IP.
import os from 'node:os';
import { Option, type Command } from 'commander';
import { USERNAME } from '../../api/vocabulary.js';
import { expectOk, isPlainHttpToAnotherHost } from '../client.js';
import { parseDuration } from '../duration.js';
import { usageError } from '../errors.js';
import { printJson, when } from '../output.js';
import { passwordFromStdin, promptPassword } from '../password.js';
import { waitForTask } from '../wait.js';
import { command, setup, taskDidNotSucceed, type CommonOptions } from './common.js';

interface CreateOptions extends CommonOptions {
  username?: string;
  passwordStdin?: boolean;
  wait?: boolean;
  idempotencyKey?: string;
  ttl?: number;
}

const LOGIN_NAME = new RegExp(USERNAME.pattern);

/** --username, else EC2_API_USERNAME, else the local login name when it can be one on the instance. */
function username(given: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (given !== undefined) return given;
  if (env.EC2_API_USERNAME?.trim()) return env.EC2_API_USERNAME.trim();
  const local = os.userInfo().username;
  if (LOGIN_NAME.test(local) && local !== 'root') return local;
  throw usageError(`your login name "${local}" cannot be the instance's login: pass --username NAME (or set EC2_API_USERNAME)`);
}

export function createCommand(): Command {
  return command('create', 'launch an instance: queue a create task; with --wait, follow it and print the IP')
    .option('--username <name>', "the login to create on the instance (default: $EC2_API_USERNAME, else your login name)")
    .option('--password-stdin', "read the login's password from stdin (default: ask for it, without echo)")
    .option('--wait', 'show the playbook\'s progress until the instance runs, then print its IP')
    .option('--idempotency-key <key>', 'the same key with the same login returns the same task, never a second instance')
    .option('--ttl <duration>', 'terminate the instance this long after the create is accepted: 90m, 2h, 1d (a minute to 30 days)', parseDuration)
    .addOption(
      new Option('--password <password>').hideHelp().argParser(() => {
        throw usageError('the password is never an argument (other users see arguments in `ps`): use --password-stdin, or leave it out to be asked');
      }),
    )
    .addHelpText(
      'after',
      `
Prints the task id, or with --wait the instance's public IP (stdout); the
rest goes to stderr. Exit 1 when the launch failed or was canceled.

Examples:
  ec2-api create --username suitepad --wait
  ec2-api create --username suitepad --ttl 2h --wait
  printf '%s' "$PASSWORD" | ec2-api create --username suitepad --password-stdin --wait
  ec2-api create --username suitepad --idempotency-key deploy-42 --password-stdin < pw.txt`,
    )
    .action(async (options: CreateOptions) => {
      const { conn, o } = setup(options);
      const login = username(options.username);
      const password = options.passwordStdin ? await passwordFromStdin() : await promptPassword();
      if (isPlainHttpToAnotherHost(conn)) {
        o.err(`warning: the password goes to ${conn.url} unencrypted; put ec2-api behind HTTPS outside a trusted network`);
      }
      const key = options.idempotencyKey;
      const { data: task, response } = await expectOk(
        conn,
        conn.api.POST('/instances', { body: { username: login, password, ttl: options.ttl }, params: { header: key === undefined ? {} : { 'idempotency-key': key } } }),
      );
      const id = task.task_id;
      const replayed = response.headers.get('idempotent-replayed') === 'true';
      if (!options.wait) {
        if (o.json) printJson(o, task);
        else o.out(id);
        o.err(`${replayed ? 'this Idempotency-Key already queued' : 'queued'} create task ${id}: follow it with \`ec2-api status ${id}\` or \`ec2-api logs ${id} --follow\``);
        return;
      }
      if (replayed) o.err(`this Idempotency-Key already queued task ${id}: following it`);
      const final = await waitForTask(conn, o, task);
      if (o.json) printJson(o, final);
      if (final.status !== 'succeeded') throw taskDidNotSucceed(final);
      if (!o.json) {
        o.err(`instance ${final.instance_id ?? '?'} runs at ${final.ip ?? '?'}: log in with \`ssh ${login}@${final.ip ?? '?'}\``);
        if (final.expires_at) o.err(`it is terminated at ${when(o, final.expires_at)} (\`ec2-api extend ${final.ip ?? '<ip>'} 2h\` to keep it longer)`);
        o.out(final.ip ?? '');
      }
    });
}
