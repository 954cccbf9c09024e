// create.yml and its ec2_api_launch module, run as the service runs them,
// against a real moto server (behind a recording endpoint where EC2 itself
// must be played: throttling, eventual consistency, slow starts).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ec2Recorder, filterValues, tagValue } from './helpers/ec2-recorder.js';
import { liveInstancesOfTask, sleep, startMoto, tempDir } from './helpers/harness.js';
import { asService, createTask, sha512Crypt } from './helpers/playbook-run.js';

const moto = await startMoto();
t.teardown(() => moto.stop());
const hash = sha512Crypt('module-launch-password');

t.test('a re-run of the same batch changes nothing and launches no second instance', async (t) => {
  const batch = ['idem-1', 'idem-2', 'idem-3'].map((id) => createTask(id, hash));
  const first = await asService('create.yml', { ec2_api_tasks: batch }, { endpoint: moto.url });
  t.equal(first.exitCode, 0, 'exit 0', { output: first.output });
  t.ok(first.recap!.changed > 0, 'the first run launched');
  t.match(first.imageId, /^ami-/, 'the image used is reported for the service to reuse');
  for (const { task_id } of batch) {
    t.match(first.results[task_id], { ok: true, instance_id: /^i-/, public_ip: /^\d+\.\d+\.\d+\.\d+$/, state: 'running', error: null });
  }

  const second = await asService('create.yml', { ec2_api_tasks: batch }, { endpoint: moto.url });
  t.equal(second.exitCode, 0, 'exit 0', { output: second.output });
  t.equal(second.recap!.changed, 0, 'changed=0');
  t.same(second.results, first.results, 'the same instances, adopted');
  for (const { task_id } of batch) t.equal(liveInstancesOfTask(moto.url, task_id).length, 1, `one instance for ${task_id}`);
  t.notOk(first.output.includes(hash) || second.output.includes(hash), 'the hash is never in the output');
});

const badTasks = [
  { why: 'an invalid username', task: { username: 'Not Valid' }, error: /username must match/ },
  { why: 'a system account', task: { username: 'ec2-user' }, error: /username ec2-user is a system account/ },
  { why: 'an invalid hash', task: { password_hash: '$6$salt$tooshort' }, error: /password_hash must be a SHA-512-crypt hash/ },
];

for (const bad of badTasks) {
  t.test(`${bad.why} fails only its own task, and the run`, async (t) => {
    const slug = bad.why.replace(/\W+/g, '-');
    const batch = [
      createTask(`good-a${slug}`, hash),
      { ...createTask(`bad${slug}`, hash), ...bad.task },
      createTask(`good-b${slug}`, hash),
    ];
    const run = await asService('create.yml', { ec2_api_tasks: batch }, { endpoint: moto.url });
    t.not(run.exitCode, 0, 'the run fails');
    t.equal(run.ok, false, 'and says so in its stats event');
    t.match(run.results[`bad${slug}`], { ok: false, instance_id: null, public_ip: null, state: null, error: bad.error });
    t.match(run.output, bad.error, 'the reason is shown');
    for (const id of [`good-a${slug}`, `good-b${slug}`]) {
      t.match(run.results[id], { ok: true, state: 'running' }, `${id} launched`);
      t.equal(liveInstancesOfTask(moto.url, id).length, 1);
    }
    t.equal(liveInstancesOfTask(moto.url, `bad${slug}`).length, 0, 'nothing launched for the bad task');
    t.notOk(run.output.includes(hash), 'the hash is never in the output');
    t.notOk(JSON.stringify(run.results).includes('tooshort'), 'nor a rejected hash in the results');
  });
}

t.test('throttled RunInstances and DescribeInstances are retried, by one layer', async (t) => {
  const ec2 = await ec2Recorder(moto.url, { throttle: { RunInstances: 4, DescribeInstances: 1 } });
  t.teardown(() => ec2.close());
  const batch = ['thr-1', 'thr-2', 'thr-3'].map((id) => createTask(id, hash));
  const run = await asService('create.yml', { ec2_api_tasks: batch }, { endpoint: ec2.url });
  t.equal(run.exitCode, 0, 'exit 0', { output: run.output });
  for (const { task_id } of batch) t.match(run.results[task_id], { ok: true, state: 'running' });
  t.equal(ec2.calls('RunInstances').length, 3 + 4, 'each throttled launch was tried again');
  const perTask = batch.map(({ task_id }) => ec2.calls('RunInstances').filter((c) => tagValue(c.params, 'TaskId') === task_id).length);
  t.same(perTask.map((n) => n >= 1), [true, true, true]);
  for (const { task_id } of batch) t.equal(liveInstancesOfTask(moto.url, task_id).length, 1, `one instance for ${task_id}`);

  // botocore's standard mode is the only retry layer (docs/pacing.md): with it set to one try, nothing tries again.
  const once = await ec2Recorder(moto.url, { throttle: { RunInstances: 1 } });
  t.teardown(() => once.close());
  const single = await asService('create.yml', { ec2_api_tasks: [createTask('thr-once', hash)] }, { endpoint: once.url, env: { AWS_MAX_ATTEMPTS: '1' } });
  t.not(single.exitCode, 0, 'the run fails');
  t.match(single.results['thr-once'], { ok: false, error: /RequestLimitExceeded/ });
  t.equal(once.calls('RunInstances').length, 1, 'after one try: no second layer retries it');
});

t.test('RunInstances carries a ClientToken derived from the task id, the same on every run', async (t) => {
  const ec2 = await ec2Recorder(moto.url);
  t.teardown(() => ec2.close());
  const batch = ['token-1', 'token-2'].map((id) => createTask(id, hash));
  const first = await asService('create.yml', { ec2_api_tasks: batch }, { endpoint: ec2.url });
  t.equal(first.exitCode, 0, 'exit 0', { output: first.output });
  const lookups = ec2.calls('DescribeInstances').filter((c) => filterValues(c.params, 'tag:TaskId').length > 0);
  t.equal(lookups.length, 1, 'one tag look-up for the whole batch');
  t.same(filterValues(lookups[0]!.params, 'tag:TaskId').sort(), ['token-1', 'token-2']);
  t.same(filterValues(lookups[0]!.params, 'tag:ManagedBy'), ['ec2-api']);

  // EC2 is eventually consistent: a re-run's look-up may miss the instance
  // launched a moment ago. It launches again, with the same token, which on
  // EC2 returns the first instance instead of a second one (moto ignores it).
  ec2.missTagLookups(1);
  const again = await asService('create.yml', { ec2_api_tasks: batch, ec2_image_id: first.imageId }, { endpoint: ec2.url });
  t.equal(again.exitCode, 0, 'exit 0', { output: again.output });
  t.equal(ec2.calls('DescribeImages').length, 1, 'a given ec2_image_id skips the image look-up');

  const launches = ec2.calls('RunInstances');
  t.equal(launches.length, 4, 'two launches per task');
  const tokens = new Map<string, Set<string>>();
  for (const call of launches) {
    const taskId = tagValue(call.params, 'TaskId')!;
    t.equal(tagValue(call.params, 'ManagedBy'), 'ec2-api');
    t.equal(tagValue(call.params, 'Name'), `ec2-api-${taskId}`);
    const token = call.params.get('ClientToken');
    t.ok(token, 'a ClientToken is sent');
    tokens.set(taskId, (tokens.get(taskId) ?? new Set()).add(token!));
  }
  for (const [taskId, seen] of tokens) {
    t.equal(seen.size, 1, `the same token on both runs of ${taskId}`);
    const [token] = [...seen];
    t.ok(token!.length <= 64 && /^[\x21-\x7e]+$/.test(token!), 'at most 64 printable ASCII characters');
    const expected = `ec2-api-${crypto.createHash('sha256').update(taskId).digest('hex').slice(0, 56)}`;
    t.equal(token, expected, 'derived from the task id');
  }
  t.not([...tokens.get('token-1')!][0], [...tokens.get('token-2')!][0], 'distinct between tasks');
});

t.test('the report file gets each task the moment it is final, not at the end of the batch', async (t) => {
  const ec2 = await ec2Recorder(moto.url);
  t.teardown(() => ec2.close());
  ec2.holdTask('slow-1', 'pending', 4_000);
  const reportFile = path.join(tempDir(), 'report.jsonl');
  const seen = new Map<string, number>();
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const text = fs.existsSync(reportFile) ? fs.readFileSync(reportFile, 'utf8') : '';
      for (const line of text.split('\n').filter(Boolean)) {
        const id = (JSON.parse(line) as { task_id: string }).task_id;
        if (!seen.has(id)) seen.set(id, Date.now());
      }
      await sleep(20);
    }
  })();
  const run = await asService('create.yml', { ec2_api_tasks: [createTask('fast-1', hash), createTask('slow-1', hash)] }, {
    endpoint: ec2.url,
    env: { EC2_API_REPORT_FILE: reportFile },
  });
  polling = false;
  await poll;
  t.equal(run.exitCode, 0, 'exit 0', { output: run.output });
  t.ok(seen.get('slow-1')! - seen.get('fast-1')! >= 2_500, `fast-1 was reported ${seen.get('slow-1')! - seen.get('fast-1')!} ms before slow-1`);

  const lines = fs.readFileSync(reportFile, 'utf8').trim().split('\n');
  t.equal(lines.length, 2, 'one line per task');
  for (const line of lines) {
    t.match(line, /^\{"task_id":/, 'task_id first');
    const { task_id: taskId, ...entry } = JSON.parse(line) as Record<string, unknown>;
    t.same(entry, run.results[taskId as string], 'exactly the final result entry');
  }
  t.notOk(fs.readFileSync(reportFile, 'utf8').includes(hash));
});
