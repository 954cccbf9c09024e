// The playbooks as ops run them by hand, and as the service runs them:
// idempotent per task id, a failed task fails the run, --check changes
// nothing, deletes only what they manage, the hash never shows, and values
// from the API are never evaluated as templates.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { projectRoot } from '../src/config.js';
import { instances, launchUntagged, liveInstancesOfTask, startMoto, tempDir } from './helpers/harness.js';
import { asService, byHand, byHandVars, createTask, sha512Crypt } from './helpers/playbook-run.js';

const moto = await startMoto();
t.teardown(() => moto.stop());

const hash = sha512Crypt('by-hand-password');
const create = (...args: string[]) => byHand(moto.url, 'create.yml', ...args);

t.test('create.yml by hand: a second run with the same task id changes nothing', async (t) => {
  const vars = `@${byHandVars({ task_id: 'manual-1', username: 'alice', password_hash: hash })}`;
  const first = await create('-e', vars);
  t.equal(first.exitCode, 0, 'exit 0');
  t.ok(first.recap!.changed > 0, 'the first run launched');
  const second = await create('-e', vars);
  t.equal(second.exitCode, 0, 'exit 0');
  t.equal(second.recap!.changed, 0, 'the second run changed nothing');
  const live = liveInstancesOfTask(moto.url, 'manual-1');
  t.equal(live.length, 1, 'one instance');
  t.match(live[0]!.tags, { ManagedBy: 'ec2-api', TaskId: 'manual-1', Name: 'ec2-api-manual-1' });
  t.notOk(first.output.includes(hash) || second.output.includes(hash), 'no_log keeps the hash out of the output');

  const ip = live[0]!.ip!;
  const del = await byHand(moto.url, 'delete.yml', '-e', `ip=${ip}`);
  t.equal(del.exitCode, 0, 'exit 0');
  t.ok(del.recap!.changed > 0);
  t.equal(instances(moto.url).find((i) => i.id === live[0]!.id)?.state, 'terminated');
  const again = await byHand(moto.url, 'delete.yml', '-e', `ip=${ip}`);
  t.equal(again.recap!.changed, 0, 'deleting again changes nothing');
  t.not(again.exitCode, 0, 'and fails: the IP is not found');
  t.match(again.output, /not_found/);
});

t.test('a failed task fails the run; username=root is refused; the hash never shows, not even with -vvv', async (t) => {
  const run = await create('-e', 'task_id=manual-root', '-e', 'username=root', '-e', `password_hash=${hash}`, '-vvv');
  t.not(run.exitCode, 0, 'non-zero exit');
  t.equal(run.recap?.failed, 1, 'shown as failed in the recap');
  t.match(run.output, /username root is a system account/, 'with the reason');
  t.equal(liveInstancesOfTask(moto.url, 'manual-root').length, 0, 'nothing launched');
  t.notOk(run.output.includes(hash), 'the hash is not in the output');
  t.notOk(run.output.includes(hash.split('$')[3]!), 'nor any part of it');

  const badHash = await create('-e', 'task_id=manual-badhash', '-e', 'username=alice', '-e', 'password_hash=secret', '-v');
  t.not(badHash.exitCode, 0);
  t.match(badHash.output, /password_hash must be a SHA-512-crypt hash/);
  t.notOk(/\bsecret\b/.test(badHash.output), 'a rejected value is not echoed either');
});

t.test('--check reports what would be launched or terminated and changes nothing', async (t) => {
  const check = await create('-e', 'task_id=manual-check', '-e', 'username=alice', '-e', `password_hash=${hash}`, '--check');
  t.equal(check.exitCode, 0, 'no error');
  t.match(check.output, /"state": "would_launch"/);
  t.equal(liveInstancesOfTask(moto.url, 'manual-check').length, 0, 'nothing launched');

  await create('-e', 'task_id=manual-check', '-e', 'username=alice', '-e', `password_hash=${hash}`);
  const [instance] = liveInstancesOfTask(moto.url, 'manual-check');
  const deleteCheck = await byHand(moto.url, 'delete.yml', '-e', `ip=${instance!.ip}`, '--check');
  t.equal(deleteCheck.exitCode, 0, 'no error');
  t.match(deleteCheck.output, /"state": "would_terminate"/);
  const cancelCheck = await byHand(moto.url, 'cancel.yml', '-e', 'task_id=manual-check', '--check');
  t.equal(cancelCheck.exitCode, 0);
  t.match(cancelCheck.output, /"state": "would_terminate"/);
  t.equal(instances(moto.url).find((i) => i.id === instance!.id)?.state, 'running', 'still running');

  const cancel = await byHand(moto.url, 'cancel.yml', '-e', 'task_id=manual-check');
  t.equal(cancel.exitCode, 0);
  t.equal(instances(moto.url).find((i) => i.id === instance!.id)?.state, 'terminated');
});

t.test('delete.yml leaves an instance without the ec2-api tag alone', async (t) => {
  const foreign = launchUntagged(moto.url);
  const del = await byHand(moto.url, 'delete.yml', '-e', `ip=${foreign.ip}`);
  t.not(del.exitCode, 0, 'not found: the run fails');
  t.equal(del.recap!.changed, 0);
  t.match(del.output, /no instance managed by ec2-api has public IP/);
  t.equal(instances(moto.url).find((i) => i.id === foreign.id)?.state, 'running');
});

t.test('list.yml lists only managed instances, with the listed fields', async (t) => {
  await create('-e', 'task_id=manual-list', '-e', 'username=alice', '-e', `password_hash=${hash}`);
  const run = await asService('list.yml', {}, { endpoint: moto.url });
  t.equal(run.exitCode, 0);
  const listed = run.results.instances as Record<string, unknown>[];
  t.ok(listed.every((i) => typeof i.task_id === 'string'), 'untagged instances are not listed');
  t.match(listed.find((i) => i.task_id === 'manual-list'), {
    instance_id: /^i-/,
    public_ip: String,
    state: 'running',
    launch_time: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/,
    name: 'ec2-api-manual-list',
    instance_type: 't2.micro',
  });
  t.same(Object.keys(listed[0]!).sort(), ['instance_id', 'instance_type', 'launch_time', 'name', 'public_ip', 'state', 'task_id']);
  const order = listed.map((i) => `${i.launch_time as string} ${i.instance_id as string}`);
  t.same(order, [...order].sort(), 'sorted by launch_time, then instance_id');

  const bad = await byHand(moto.url, 'list.yml', '-e', 'ec2_api_list_states=running,bogus');
  t.not(bad.exitCode, 0);
  t.match(bad.output, /ec2_api_list_states must be/);
});

t.test('values marked unsafe are never evaluated as templates', async (t) => {
  const marker = path.join(tempDir(), 'pwned');
  const injection = `{{ lookup('pipe', 'touch ${marker}') }}`;
  const run = await asService('create.yml', {
    ec2_api_tasks: [
      createTask('inject-user', hash, injection),
      { ...createTask('inject-hash', hash, 'carol'), password_hash: injection },
      createTask('fine', hash, 'carol'),
    ],
  }, { endpoint: moto.url });
  t.not(run.exitCode, 0, 'two tasks failed');
  t.notOk(fs.existsSync(marker), 'the lookup never ran');
  t.match(run.results['inject-user'], { ok: false, error: /username/ });
  t.match(run.results['inject-hash'], { ok: false, error: /password_hash/ });
  t.match(run.results.fine, { ok: true, public_ip: String }, 'the valid task in the same batch still launched');
  t.equal(liveInstancesOfTask(moto.url, 'fine').length, 1);
  t.equal(liveInstancesOfTask(moto.url, 'inject-user').length, 0);
});

t.test('the playbooks pass ansible-lint with the production profile', async (t) => {
  const lint = await execa('ansible-lint', ['--profile', 'production', 'playbooks'], { cwd: projectRoot, all: true, reject: false, env: { NO_COLOR: '1' } });
  t.equal(lint.exitCode, 0, 'clean', { output: lint.all });
});
