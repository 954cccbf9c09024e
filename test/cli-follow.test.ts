// The command-line client, continued (cli.test.ts has the basics): human
// durations, logs, cancel and Ctrl-C, the terminal (tables, colour, the
// password prompt, the progress bar), and a service restart under --wait.
import path from 'node:path';
import t from 'tap';
import { freePort, startService, tempDir } from './helpers/harness.js';
import { runCli, startCli, startCliOnTty } from './helpers/cli.js';
import { cliSuite, clean, IP_LINE, json, PASSWORD, taskIdIn, TOKEN } from './helpers/cli-suite.js';

const { moto, main, env, cli, serve, services } = await cliSuite(t);

t.test('create --ttl 2h and extend <ip> 1d12h: human durations become the API\'s seconds; a bad one is a usage error', async (t) => {
  const created = await cli(['create', '--username', 'suitepad', '--password-stdin', '--ttl', '2h', '--wait', '--json'], `${PASSWORD}\n`);
  t.equal(created.code, 0, created.stderr);
  const task = json<{ task_id: string; ip: string; created_at: string; expires_at: string; created_by: string }>(created);
  t.ok(Math.abs(Date.parse(task.expires_at) - Date.parse(task.created_at) - 7_200_000) < 5_000, 'expires 2 h after acceptance');
  t.equal(task.created_by, 'default', 'a bare token is named default');

  const extended = await cli(['extend', task.ip, '1d12h']);
  t.equal(extended.code, 0, extended.stderr);
  const stored = (await main.service.tasks.get(task.task_id))!.expires_at!;
  t.equal(extended.stdout, `${stored}\n`, 'stdout is the new expiry, as the service holds it');
  t.ok(Math.abs(Date.parse(stored) - Date.now() - 129_600_000) < 60_000, '36 h from now');
  t.match(extended.stderr, new RegExp(`\\(${task.ip.replaceAll('.', '\\.')}\\) is terminated at `));
  clean(t, extended, 'extend');

  const bad = await cli(['extend', task.ip, '2 hours']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /"2 hours" is not a duration: give a number with a unit, such as 90m, 2h, 1d or 1d12h/);
  t.equal((await main.service.tasks.get(task.task_id))!.expires_at, stored, 'a refused duration changes nothing');
  const tooShort = await cli(['create', '--username', 'suitepad', '--password-stdin', '--ttl', '30s'], `${PASSWORD}\n`);
  t.equal(tooShort.code, 2, 'the server refuses a ttl under a minute: exit 2');
  t.match(tooShort.stderr, /ttl is not valid: it must be a whole number of seconds from 60/);
  t.equal((await cli(['delete', task.ip, '--wait'])).code, 0);
});

t.test('logs prints the playbook output; logs --follow follows a running task and ends with it', async (t) => {
  const queued = await cli(['create', '--username', 'suitepad', '--password-stdin'], PASSWORD);
  t.equal(queued.code, 0, queued.stderr);
  const id = queued.stdout.trim();
  t.match(queued.stderr, new RegExp(`follow it with \`ec2-api status ${id}\``));

  const follow = await cli(['logs', id, '--follow']);
  t.equal(follow.code, 0, follow.stderr);
  t.match(follow.stdout, /TASK \[Launch one instance per task\][\s\S]*PLAY RECAP/, 'the whole run, to its end');
  t.equal((await main.service.tasks.get(id))!.status, 'succeeded', 'it ended when the task did');
  const whole = await cli(['logs', id]);
  t.equal(whole.stdout, follow.stdout, 'followed piece by piece, the same text as read at once');
  clean(t, follow, 'logs --follow');
});

t.test('cancel; Ctrl-C while waiting stops following, not the task, and says how to cancel', async (t) => {
  // Never contacted: no playbook starts. One waiting task fills its queue.
  const paused = await serve('http://127.0.0.1:9', { EC2_API_PAUSED: '1', EC2_API_MAX_QUEUED: '1' });
  const penv = { EC2_API_URL: paused.url, EC2_API_TOKEN: TOKEN };

  const run = startCli(['create', '--username', 'suitepad', '--password-stdin', '--wait'], { env: penv, input: PASSWORD });
  await run.waitFor(/create: queued/);
  run.child.kill('SIGINT');
  const interrupted = await run.done;
  t.equal(interrupted.code, 130, 'exit 130, as for any Ctrl-C');
  const id = taskIdIn(interrupted.stderr)!;
  t.match(
    interrupted.stderr,
    new RegExp(`ec2-api: stopped following; task ${id} goes on\\. Cancel it with \`ec2-api cancel ${id}\``),
  );
  t.equal((await paused.service.tasks.get(id))!.status, 'queued', 'the task was not canceled');

  const full = await runCli(['create', '--username', 'suitepad', '--password-stdin'], { env: penv, input: PASSWORD });
  t.equal(full.code, 3, 'a full queue (503): the service cannot take it now');
  t.match(full.stderr, /^ec2-api: 1 tasks are waiting \(EC2_API_MAX_QUEUED\); retry later \(Retry-After: 30 s\)\n$/, 'with Retry-After');

  const canceled = await runCli(['cancel', id], { env: penv });
  t.equal(canceled.code, 0, canceled.stderr);
  t.match(canceled.stdout, new RegExp(`^canceled create task ${id}; it had not started\\n$`));
  t.equal((await paused.service.tasks.get(id))!.status, 'canceled');
  const again = await runCli(['cancel', id], { env: penv });
  t.equal(again.code, 1, 'canceling an ended task');
  t.match(again.stderr, /^ec2-api: the task has already been canceled; nothing to cancel\n$/);
  const unknown = await runCli(['cancel', '01a21c5a-6dbb-7575-a344-8105e40c2f30'], { env: penv });
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /no task 01a21c5a-6dbb-7575-a344-8105e40c2f30: list tasks with `ec2-api tasks`/);

  const status = await runCli(['status', id], { env: penv });
  t.equal(status.code, 0);
  t.match(status.stdout, /^status +canceled$/m);
  clean(t, status, 'status');
  const health = await runCli(['health'], { env: penv });
  t.equal(health.code, 1, 'not ready (its EC2 endpoint does not answer): exit 1');
  t.match(health.stdout, /paused/);
  t.match(health.stderr, /is not ready: ec2/);
});

t.test('piped: tab-separated lines without a header; on a terminal: a table, colour unless NO_COLOR', async (t) => {
  const piped = await cli(['tasks', '--limit', '3']);
  t.equal(piped.code, 0);
  clean(t, piped, 'tasks piped');
  const rows = piped.stdout.trim().split('\n').map((line) => line.split('\t'));
  t.equal(rows.length, 3);
  t.ok(rows.every((row) => row.length === 6 && /^[0-9a-f-]{36}$/.test(row[0]!)), 'six fields, the task id first');

  const tty = startCliOnTty(['tasks', '--limit', '3'], { env });
  const onTty = await tty.done;
  t.equal(onTty.code, 0, onTty.output);
  t.match(onTty.output, /TASK +ACTION +STATUS +IP +CREATED +DETAIL/, 'a header');
  t.match(onTty.output, /\u001b\[32msucceeded\u001b\[39m/, 'status in colour');
  const plain = await startCliOnTty(['tasks', '--limit', '3'], { env: { ...env, NO_COLOR: '1' } }).done;
  t.match(plain.output, /TASK +ACTION/);
  t.notMatch(plain.output, /\u001b\[\d+m/, 'NO_COLOR: no colour');
});

t.test('on a terminal: the password prompt does not echo, and --wait draws a progress bar', async (t) => {
  const tty = startCliOnTty(['create', '--username', 'suitepad', '--wait'], { env });
  await tty.waitFor(/Password for the new login: $/);
  tty.type(`${PASSWORD}\r`);
  await tty.waitFor(/Password again: $/);
  tty.type(`${PASSWORD}\r`);
  const { code, output } = await tty.done;
  t.equal(code, 0, output);
  t.notOk(output.includes(PASSWORD), 'the password was not echoed');
  t.match(output, /create \[█+\] (\d+)\/\1 done/, 'a bar over the playbook steps, full at the end');
  t.match(output, /\r\n\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\r\n/, 'then the IP');

  const mismatch = startCliOnTty(['create', '--username', 'suitepad'], { env });
  await mismatch.waitFor(/Password for the new login: $/);
  mismatch.type(`${PASSWORD}\r`);
  await mismatch.waitFor(/Password again: $/);
  mismatch.type('something else\r');
  const differ = await mismatch.done;
  t.equal(differ.code, 2);
  t.match(differ.output, /the two passwords differ/);
});

t.test('create --wait rides out a service restart: it resumes the event stream where it was', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const first = await startService(moto.url, { API_TOKENS: TOKEN, EC2_API_DB: db, EC2_API_PAUSED: '1' });
  await first.app.listen({ port, host: '127.0.0.1' });

  const run = startCli(['create', '--username', 'suitepad', '--password-stdin', '--wait'], { env: { EC2_API_URL: url, EC2_API_TOKEN: TOKEN }, input: PASSWORD });
  await run.waitFor(/create: queued/);
  await first.close(); // SIGTERM-like: streams get `stopping`, the queued task stays on disk
  await run.waitFor(/the service is restarting; reconnecting/);
  const second = await startService(moto.url, { API_TOKENS: TOKEN, EC2_API_DB: db });
  services.push(second);
  await second.app.listen({ port, host: '127.0.0.1' });

  const result = await run.done;
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, IP_LINE, 'the IP, once the restarted service ran the task');
  t.equal(result.stderr.match(/create: queued/g)?.length, 1, 'resumed after the last event seen, not replayed from the start');
});
