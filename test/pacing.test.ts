// EC2 calls paced to EC2's request buckets (docs/pacing.md), against a
// metered EC2 (bench/lib/metered-ec2.mjs: moto behind a proxy that refuses
// calls beyond the documented buckets with RequestLimitExceeded, as EC2
// does). Counts come from the proxy: what EC2 would have seen.
import t from 'tap';
import { startMeteredEc2 } from '../bench/lib/metered-ec2.mjs';
import { eventually, startMoto, startService, untilTerminal } from './helpers/harness.js';
import { asService, createTask, sha512Crypt } from './helpers/playbook-run.js';

const moto = await startMoto();
t.teardown(() => moto.stop());
const ec2 = await startMeteredEc2(moto.url);
t.teardown(() => ec2.close());
const hash = sha512Crypt('pacing-password');
/** (N − 5) / 2: the least time N launches take at RunInstances' 5 tokens and 2 a second. */
const floor = (n: number) => (n - 5) / 2;

t.test('a burst of 15 creates in two concurrent runs shares one budget: RunInstances is all but never throttled', async (t) => {
  ec2.reset();
  // Batches of 8: two ansible-playbook runs at once, each with its own module process.
  const service = await startService(ec2.url, { EC2_API_BATCH_SIZE: '8', EC2_API_CONCURRENCY: '2' });
  t.teardown(() => service.close());
  const runs: number[] = [];
  service.tasks.onRun((report) => runs.push(report.tasks));
  let mostAtOnce = 0;
  const sampler = setInterval(() => void service.tasks.stats().then(({ runningPlaybooks }) => (mostAtOnce = Math.max(mostAtOnce, runningPlaybooks))), 50);
  t.teardown(() => clearInterval(sampler));

  const started = Date.now();
  const ids = await Promise.all(Array.from({ length: 15 }, async (_, i) => (await service.tasks.createTask({ username: `user${i}`, password: 'suitepad' })).task.id));
  const tasks = await Promise.all(ids.map((id) => untilTerminal(service.tasks, id)));

  t.same(tasks.map((task) => task.status), Array(15).fill('succeeded'), 'every task succeeded');
  t.equal(new Set(tasks.map((task) => task.instance_id)).size, 15, 'each with its own instance');
  t.comment(`15 creates drained in ${(Date.now() - started) / 1000} s`);
  await eventually(() => runs.reduce((a, b) => a + b, 0) === 15, 30_000, 'the runs to end');
  t.ok(mostAtOnce >= 2, `runs went side by side (at most ${mostAtOnce} at once)`);
  const run = ec2.stats().RunInstances!;
  t.equal(run.calls - run.throttled, 15, 'EC2 launched 15');
  t.ok(run.throttled <= 1, `at most 1 RunInstances throttled (was ${run.throttled}; unpaced, two runs sending at once lose about half)`);
  t.ok((run.last_at - run.first_at) / 1000 >= floor(15) * 0.9, 'the launches took the time the bucket allows: they were paced, not refused');
  const throttledElsewhere = Object.entries(ec2.stats()).filter(([action, count]) => action !== 'RunInstances' && count.throttled > 0);
  t.same(throttledElsewhere, [], 'no other call was throttled');

  const metrics = (await service.app.inject({ url: '/metrics' })).body;
  const series = (name: string) => Number(new RegExp(`^ec2_api_${name}\\{kind="run_instances"[^}]*\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
  t.equal(series('pacing_calls_total'), run.calls, '/metrics counts every RunInstances try');
  t.equal(series('pacing_throttled_total'), run.throttled, 'and the throttled ones, as EC2 saw them');
  t.ok(series('pacing_tokens') <= 5, '/metrics shows the tokens left');
  t.equal(series('pacing_rate') > 0, true, 'and the rate in use');

  const health = (await service.app.inject({ url: '/healthz' })).json();
  t.match(health.pacing.limits, { run_instances: '5/2', terminate_instances: '100/5', mutating: '50/5', describe: '100/20' });
  const bucket = health.pacing.buckets.find((b: { kind: string }) => b.kind === 'run_instances');
  t.match(bucket, { endpoint: ec2.url, region: 'us-east-1', capacity: 5, configured_rate: 2, calls: run.calls, throttled: run.throttled });
  t.notMatch(JSON.stringify(health), 'testing', 'the access key id is never shown, only its digest');
});

t.test('a playbook run by hand paces itself within the run', async (t) => {
  ec2.reset();
  const batch = Array.from({ length: 12 }, (_, i) => createTask(`by-hand-${i}`, hash));
  const run = await asService('create.yml', { ec2_api_tasks: batch }, { endpoint: ec2.url });
  t.equal(run.exitCode, 0, 'exit 0', { output: run.output });
  for (const { task_id } of batch) t.match(run.results[task_id], { ok: true, state: 'running' });
  const launches = ec2.stats().RunInstances!;
  t.equal(launches.calls - launches.throttled, 12);
  t.ok(launches.throttled <= 1, `at most 1 RunInstances throttled (was ${launches.throttled})`);
  t.ok((launches.last_at - launches.first_at) / 1000 >= floor(12) * 0.9, 'at the pace of the bucket');
});

t.test('a run whose service socket is gone (a service stopped mid-run) paces itself', async (t) => {
  ec2.reset();
  const batch = Array.from({ length: 8 }, (_, i) => createTask(`no-socket-${i}`, hash));
  const run = await asService('create.yml', { ec2_api_tasks: batch }, { endpoint: ec2.url, env: { EC2_API_PACER_SOCKET: '/nonexistent/pacer.sock' } });
  t.equal(run.exitCode, 0, 'exit 0', { output: run.output });
  for (const { task_id } of batch) t.match(run.results[task_id], { ok: true, state: 'running' });
  const launches = ec2.stats().RunInstances!;
  t.ok(launches.throttled <= 1, `at most 1 RunInstances throttled (was ${launches.throttled})`);
  t.ok((launches.last_at - launches.first_at) / 1000 >= floor(8) * 0.9, 'at the pace of the bucket');
});
