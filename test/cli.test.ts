// The command-line client (`ec2-api`, dist/cli/main.js) as a user runs it:
// a child process talking HTTP to the real service (real SQLite, queue and
// ansible-playbook) against a real moto server, piped. Durations, logs,
// cancel, the terminal and restarts: cli-follow.test.ts.
import t from 'tap';
import { ec2Proxy, freePort, liveInstanceIds } from './helpers/harness.js';
import { processView, runCli, startCli } from './helpers/cli.js';
import { cliSuite, clean, IP_LINE, json, PASSWORD, taskIdIn, TOKEN } from './helpers/cli-suite.js';

const { moto, main, env, cli, serve } = await cliSuite(t);

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
