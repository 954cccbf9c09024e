// delete.yml and cancel.yml and their ec2_api_terminate module, run as the
// service runs them, against a real moto server behind a recording endpoint:
// one look-up and one TerminateInstances per batch, only what ec2-api
// launched, and instances already shutting down are waited for.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ec2Recorder, filterValues } from './helpers/ec2-recorder.js';
import { instances, launchTagged as launchTaggedOn, launchUntagged, startMoto, tempDir } from './helpers/harness.js';
import { asService, createTask, sha512Crypt } from './helpers/playbook-run.js';

const moto = await startMoto();
t.teardown(() => moto.stop());
const ec2 = await ec2Recorder(moto.url);
t.teardown(() => ec2.close());
const hash = sha512Crypt('module-terminate-password');

/** An instance someone else launched, with these tags only. */
const launchTagged = (tags: Record<string, string>) => launchTaggedOn(moto.url, tags);

const stateOf = (id: string) => instances(moto.url).find((i) => i.id === id)?.state;
const terminateCalls = () => ec2.calls('TerminateInstances');
const terminatedIds = (call: { params: URLSearchParams }) =>
  [...call.params].filter(([key]) => key.startsWith('InstanceId.')).map(([, value]) => value).sort();

const created = await asService('create.yml', {
  ec2_api_tasks: ['del-1', 'del-2', 'del-3', 'del-4', 'can-1', 'can-2'].map((id) => createTask(id, hash)),
}, { endpoint: moto.url });
if (created.exitCode !== 0) throw new Error(`setup failed:\n${created.output}`);
const launched = (taskId: string) => created.results[taskId] as { instance_id: string; public_ip: string };

t.test('delete: one look-up and one TerminateInstances for the batch; a foreign instance is not found and left alone', async (t) => {
  const foreign = launchUntagged(moto.url);
  const before = terminateCalls().length;
  const reportFile = path.join(tempDir(), 'report.jsonl');
  const deletes = [
    { task_id: 'd-1', ip: launched('del-1').public_ip },
    { task_id: 'd-2', ip: launched('del-2').public_ip },
    { task_id: 'd-foreign', ip: foreign.ip },
  ];
  const run = await asService('delete.yml', { ec2_api_deletes: deletes }, { endpoint: ec2.url, env: { EC2_API_REPORT_FILE: reportFile } });

  t.not(run.exitCode, 0, 'an IP that no managed instance has fails the run');
  t.match(run.results['d-1'], { ok: true, instance_id: launched('del-1').instance_id, public_ip: deletes[0]!.ip, state: 'terminated', error: null });
  t.match(run.results['d-2'], { ok: true, instance_id: launched('del-2').instance_id, state: 'terminated' });
  t.same(run.results['d-foreign'], {
    ok: false,
    instance_id: null,
    public_ip: foreign.ip,
    state: 'not_found',
    error: `no instance managed by ec2-api has public IP ${foreign.ip}`,
  });
  const calls = terminateCalls().slice(before);
  t.equal(calls.length, 1, 'one TerminateInstances call');
  t.same(terminatedIds(calls[0]!), [launched('del-1').instance_id, launched('del-2').instance_id].sort());
  const lookup = ec2.calls('DescribeInstances').filter((c) => filterValues(c.params, 'ip-address').length > 0).at(-1)!;
  t.same(filterValues(lookup.params, 'tag:ManagedBy'), ['ec2-api'], 'only managed instances are looked at');
  t.same(filterValues(lookup.params, 'ip-address').sort(), deletes.map((d) => d.ip).sort(), 'all IPs in one look-up');
  t.equal(stateOf(foreign.id), 'running', 'the foreign instance still runs');
  t.equal(stateOf(launched('del-1').instance_id), 'terminated');

  const lines = fs.readFileSync(reportFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  t.same(lines.map((l) => l.task_id).sort(), ['d-1', 'd-2', 'd-foreign'], 'one report line per request');
  for (const { task_id: key, ...entry } of lines) t.same(entry, run.results[key as string]);
});

t.test('delete: an instance already shutting down is terminated in the same call and waited for', async (t) => {
  const shuttingDown = launched('del-3');
  const running = launched('del-4');
  ec2.holdInstance(shuttingDown.instance_id, 'shutting-down', 3_000);
  const before = terminateCalls().length;
  const run = await asService('delete.yml', {
    ec2_api_deletes: [
      { task_id: 'd-3', ip: shuttingDown.public_ip },
      { task_id: 'd-4', ip: running.public_ip },
    ],
  }, { endpoint: ec2.url });

  t.equal(run.exitCode, 0, 'exit 0');
  t.match(run.results['d-3'], { ok: true, instance_id: shuttingDown.instance_id, state: 'terminated' });
  t.match(run.results['d-4'], { ok: true, instance_id: running.instance_id, state: 'terminated' });
  t.ok(run.durationMs >= 3_000, `the run waited until it was terminated (${run.durationMs} ms)`);
  const calls = terminateCalls().slice(before);
  t.equal(calls.length, 1, 'one TerminateInstances call');
  t.same(terminatedIds(calls[0]!), [shuttingDown.instance_id, running.instance_id].sort());
});

t.test('cancel: every instance of the tasks in one call; nothing found is fine; an instance without ManagedBy is left alone', async (t) => {
  const impostor = launchTagged({ TaskId: 'can-1' });
  const before = terminateCalls().length;
  const run = await asService('cancel.yml', {
    ec2_api_cancels: [{ task_id: 'can-1' }, { task_id: 'can-2' }, { task_id: 'never-launched' }],
  }, { endpoint: ec2.url });

  t.equal(run.exitCode, 0, 'exit 0');
  t.same(run.results['can-1'], { ok: true, instance_ids: [launched('can-1').instance_id], state: 'terminated', error: null });
  t.same(run.results['can-2'], { ok: true, instance_ids: [launched('can-2').instance_id], state: 'terminated', error: null });
  t.same(run.results['never-launched'], { ok: true, instance_ids: [], state: 'not_found', error: null });
  const calls = terminateCalls().slice(before);
  t.equal(calls.length, 1, 'one TerminateInstances call');
  t.same(terminatedIds(calls[0]!), [launched('can-1').instance_id, launched('can-2').instance_id].sort());
  t.equal(stateOf(impostor.id), 'running', 'the instance without ManagedBy=ec2-api still runs');

  const again = await asService('cancel.yml', { ec2_api_cancels: [{ task_id: 'can-1' }] }, { endpoint: ec2.url });
  t.equal(again.exitCode, 0);
  t.equal(again.recap!.changed, 0, 'a re-run changes nothing');
  t.same(again.results['can-1'], { ok: true, instance_ids: [], state: 'not_found', error: null });
  t.equal(terminateCalls().length, before + 1, 'and calls no TerminateInstances');
});

t.test('an invalid request fails alone', async (t) => {
  const run = await asService('cancel.yml', { ec2_api_cancels: [{ task_id: '-bad id' }, { task_id: 'nothing-here' }] }, { endpoint: ec2.url });
  t.not(run.exitCode, 0);
  t.match(run.results['-bad id'], { ok: false, instance_ids: [], state: null, error: /task_id must match/ });
  t.match(run.results['nothing-here'], { ok: true, state: 'not_found' });
});
