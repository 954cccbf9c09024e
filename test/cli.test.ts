// The command-line client (`ec2-api`, dist/cli/main.js) as a user runs it:
// a child process talking HTTP to the real service (real SQLite, queue and
// ansible-playbook) against a real moto server, piped or on a terminal.
import path from 'node:path';
import tap from 'tap';

const t = tap;
import { ec2Proxy, freePort, liveInstanceIds, startMoto, startService, tempDir, type TestService } from './helpers/harness.js';
import { ESCAPE, ensureCliBuilt, processView, runCli, startCli, startCliOnTty, type CliResult } from './helpers/cli.js';

ensureCliBuilt();

const TOKEN = 'cli-test-token-0123456789abcdef';
const PASSWORD = 'Cli-Secret-Passw0rd-77'; // distinctive: found wherever it leaks
const IP_LINE = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\n$/;

const moto = await startMoto();
const services: TestService[] = [];
t.teardown(async () => {
  for (const service of services) await service.close();
  await moto.stop();
});

/** The real service, listening on a port of its own; its URL. */
async function serve(endpoint: string, env: Record<string, string> = {}): Promise<{ service: TestService; url: string }> {
  const service = await startService(endpoint, { API_TOKENS: TOKEN, ...env });
  services.push(service);
  await service.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = service.app.server.address() as { port: number };
  return { service, url: `http://127.0.0.1:${port}` };
}

const main = await serve(moto.url);
const env = { EC2_API_URL: main.url, EC2_API_TOKEN: TOKEN };
const cli = (args: string[], input?: string, extra: Record<string, string | undefined> = {}) => runCli(args, { env: { ...env, ...extra }, input });

const json = <T = Record<string, unknown>>(result: CliResult): T => JSON.parse(result.stdout) as T;
const taskIdIn = (text: string) => /task ([0-9a-f-]{36})/.exec(text)?.[1];

/** Nothing a person or script should not see: no escape codes when piped, never the password. */
function clean(t: Pick<typeof tap, 'notMatch' | 'notOk'>, result: CliResult, what: string) {
  t.notMatch(result.stdout, ESCAPE, `${what}: no escape codes on stdout when piped`);
  t.notMatch(result.stderr, ESCAPE, `${what}: no escape codes on stderr when piped`);
  t.notOk(result.stdout.includes(PASSWORD) || result.stderr.includes(PASSWORD), `${what}: the password is not printed`);
}

let launchedIp = '';

t.test('create --wait --password-stdin prints the IP and exits 0; the password is in no argv, environment or output', async (t) => {
  const run = startCli(['create', '--username', 'suitepad', '--password-stdin', '--wait'], { env, input: `${PASSWORD}\n` });
  await run.waitFor(/create task [0-9a-f-]{36} queued/);
  const seen = processView(run.child.pid!);
  t.notOk(seen.cmdline.includes(PASSWORD), 'not in its command line');
  t.notOk(seen.environ.includes(PASSWORD), 'not in its environment');
  const result = await run.done;
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, IP_LINE, 'stdout is the IP and nothing else');
  clean(t, result, 'create --wait');
  t.match(result.stderr, /step \d+\/\d+: Launch one instance per task/, 'piped, the progress is plain lines');
  const id = taskIdIn(result.stderr)!;
  const task = (await main.service.tasks.get(id))!;
  t.equal(task.status, 'succeeded');
  t.equal(`${task.ip}\n`, result.stdout, 'the IP of the instance the task launched');
  t.same(await liveInstanceIds(moto.url, id), [task.instance_id], 'one instance, running');
  launchedIp = task.ip!;
});

t.test('--json prints the API\'s JSON on every command', async (t) => {
  const queued = await cli(['create', '--username', 'suitepad', '--password-stdin', '--json', '--idempotency-key', 'cli-json-1'], PASSWORD);
  t.equal(queued.code, 0, queued.stderr);
  const task = json(queued);
  t.match(task, { task_id: String, action: 'create', status: 'queued' });
  const id = task.task_id as string;

  const waited = await cli(['create', '--username', 'suitepad', '--password-stdin', '--json', '--wait', '--idempotency-key', 'cli-json-1'], PASSWORD);
  t.equal(waited.code, 0, waited.stderr);
  t.match(json(waited), { task_id: id, status: 'succeeded', ip: String }, 'the same key follows the same task to its end');
  t.match(waited.stderr, /already queued task/, 'and says it is the same task');
  t.equal((await liveInstanceIds(moto.url, id)).length, 1, 'one instance for the key');

  const status = await cli(['status', id, '--json']);
  t.match(json(status), { task_id: id, status: 'succeeded', ip: String });
  const tasks = await cli(['tasks', '--json', '--status', 'succeeded', '--action', 'create', '--limit', '5']);
  const list = json<{ tasks: { task_id: string; status: string }[]; next_cursor: string | null }>(tasks);
  t.ok(list.tasks.some((task) => task.task_id === id), 'tasks --json lists it');
  t.ok(list.tasks.every((task) => task.status === 'succeeded'), 'filtered by status');
  const instances = await cli(['instances', '--json']);
  t.ok(json<{ instances: { task_id: string }[] }>(instances).instances.some((i) => i.task_id === id), 'instances --json has its instance');
  const health = await cli(['health', '--json']);
  t.match(json(health), { healthz: { status: 'ok', cloud: { kind: 'endpoint', region: 'us-east-1' } }, readyz: { status: 'ready' } });
  const logs = await cli(['logs', id, '--json']);
  t.match(json(logs), { task_id: id, offset: 0, complete: true, log: /Launch one instance per task/ });
  for (const [what, result] of Object.entries({ queued, waited, status, tasks, instances, health, logs })) {
    t.equal(result.code, 0, `${what}: exit 0`);
    clean(t, result, what);
  }
});

t.test('a failing launch exits 1 with the task\'s error', async (t) => {
  // An EC2 that refuses the credentials, as AWS does with wrong keys.
  const refusing = await ec2Proxy(moto.url, { refuseAll: true });
  t.teardown(() => refusing.close());
  const failing = await serve(refusing.url);
  const result = await runCli(['create', '--username', 'suitepad', '--password-stdin', '--wait', '--json'], {
    env: { EC2_API_URL: failing.url, EC2_API_TOKEN: TOKEN },
    input: PASSWORD,
  });
  t.equal(result.code, 1, result.stderr);
  t.match(json(result), { status: 'failed', error: /AuthFailure/ }, '--json prints the final task, failed');
  const last = result.stderr.trim().split('\n').at(-1)!;
  t.match(last, /^ec2-api: create task [0-9a-f-]{36} failed: .*AuthFailure.*\(playbook log: `ec2-api logs [0-9a-f-]{36}`\)$/, 'one line: the error, and where to read more');
  t.match(result.stderr, /step \d+ failed: .*AuthFailure/, 'the progress says which step failed');
  clean(t, result, 'failing create');
});

t.test('a refused or missing token and an unreachable server exit 3 with what to do', async (t) => {
  const wrong = await cli(['tasks'], undefined, { EC2_API_TOKEN: 'not-the-token-at-all' });
  t.equal(wrong.code, 3);
  t.match(wrong.stderr, /^ec2-api: ec2-api at http:\/\/127\.0\.0\.1:\d+ refused the token in EC2_API_TOKEN: set it to one of the server's API_TOKENS\n$/);
  t.notOk(wrong.stderr.includes('not-the-token-at-all'), 'the token is not echoed');

  const none = await cli(['status', '01a21c5a-6dbb-7575-a344-8105e40c2f30'], undefined, { EC2_API_TOKEN: undefined });
  t.equal(none.code, 3);
  t.match(none.stderr, /needs a token: set EC2_API_TOKEN/);

  const health = await cli(['health'], undefined, { EC2_API_TOKEN: undefined });
  t.equal(health.code, 3, '/healthz is open, /readyz is not');
  t.match(health.stderr, /needs a token/);

  const nobody = `http://127.0.0.1:${await freePort()}`;
  const closed = await cli(['tasks'], undefined, { EC2_API_URL: nobody });
  t.equal(closed.code, 3);
  t.equal(closed.stderr, `ec2-api: cannot reach ec2-api at ${nobody} (ECONNREFUSED): start it (npm start) or point --url / EC2_API_URL at it\n`);
  const byOption = await cli(['tasks', '--url', nobody]);
  t.equal(byOption.code, 3, '--url wins over EC2_API_URL');
  t.match(byOption.stderr, nobody);

  const notOurs = await cli(['tasks', '--url', `${moto.url}`]);
  t.equal(notOurs.code, 3, 'a server that is not ec2-api');
  t.match(notOurs.stderr, /check that --url \/ EC2_API_URL points at ec2-api/);
});

t.test('usage errors exit 2 with one line that says what to do; --help works on every command', async (t) => {
  const cases: [string[], RegExp, string?][] = [
    [['frobnicate'], /unknown command 'frobnicate'; see `ec2-api --help`/],
    [['stauts'], /Did you mean status\?/],
    [['delete', '1.2.3'], /"1\.2\.3" is not an IPv4 address/],
    [['status', 'nope'], /"nope" is not a task id/],
    [['tasks', '--status', 'sleeping'], /Allowed choices are queued, running, succeeded, failed, canceled; see `ec2-api tasks --help`/],
    [['tasks', '--limit', '0'], /--limit takes a number from 1 to 500/],
    [['create', '--username', 'suitepad', `--password=${PASSWORD}`], /the password is never an argument .*--password-stdin/],
    [['create', '--username', 'suitepad'], /no terminal to ask for the password on: pipe it in with --password-stdin/],
    [['create', '--username', 'root', '--password-stdin'], /username "root" is a system account on the instance; choose another name/, PASSWORD],
    [['create', '--username', 'suitepad', '--password-stdin'], /password is not valid/, 'short'],
    [['create', '--username', 'suitepad', '--password-stdin'], /--password-stdin read an empty password/, ''],
    [['tasks', '--url', 'not a url'], /"not a url" is not a URL: pass --url/],
    [[], /Usage: ec2-api/],
  ];
  const results = await Promise.all(cases.map(([args, , input]) => cli(args, input)));
  for (const [i, [args, message]] of cases.entries()) {
    const result = results[i]!;
    t.equal(result.code, 2, `ec2-api ${args.join(' ')}: exit 2`);
    t.match(result.stderr, message, `ec2-api ${args.join(' ')}: ${result.stderr.trim()}`);
    if (args.length) t.equal(result.stderr.trim().split('\n').length, 1, 'one line');
    t.notOk(result.stderr.includes(PASSWORD), 'the password is never echoed');
  }
  const commands = ['', 'create', 'delete', 'cancel', 'status', 'tasks', 'instances', 'logs', 'health'];
  const helps = await Promise.all(commands.map((command) => cli(command ? [command, '--help'] : ['--help'])));
  for (const [i, command] of commands.entries()) {
    const help = helps[i]!;
    t.equal(help.code, 0, `${command || 'ec2-api'} --help: exit 0`);
    t.match(help.stdout, new RegExp(`Usage: ec2-api ${command}`));
    if (command) t.match(help.stdout, /--url <url>[\s\S]*--json/, `${command}: --url and --json`);
  }
  t.match(helps[0]!.stdout, /Exit status:[\s\S]*3 +the server cannot be reached/, 'the exit statuses are documented');
});

t.test('delete --wait terminates what create launched; an IP no managed instance has exits 1 with the 404\'s message', async (t) => {
  const unknown = await cli(['delete', '54.1.2.3', '--wait']);
  t.equal(unknown.code, 1, unknown.stderr);
  t.match(unknown.stderr, /^ec2-api: .*54\.1\.2\.3.*\(see `ec2-api instances`\)\n$/m);
  clean(t, unknown, 'delete unknown');

  const deleted = await cli(['delete', launchedIp, '--wait']);
  t.equal(deleted.code, 0, deleted.stderr);
  t.match(deleted.stdout, /^i-[0-9a-f]+\n$/, 'stdout is the terminated instance');
  t.match(deleted.stderr, new RegExp(`terminated i-[0-9a-f]+ \\(${launchedIp.replaceAll('.', '\\.')}\\)`));
  clean(t, deleted, 'delete');
  const listed = await cli(['instances']);
  t.notOk(listed.stdout.includes(`\t${launchedIp}\t`), 'no longer listed');

  const queued = await cli(['delete', launchedIp]);
  t.equal(queued.code, 0, 'without --wait: queued');
  t.match(queued.stdout, /^[0-9a-f-]{36}\n$/, 'stdout is the task id');
});

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
