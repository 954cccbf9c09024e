// The resource routes: GET /instances reads EC2 through list.yml; POST
// /instances and DELETE /instances/<ip> are the same tasks as the
// compatibility routes, answered with the task document.
import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import { projectRoot } from '../src/config.js';
import { VALID, ec2Proxy, eventually, eventuallyAsync, instances, launchUntagged, startMoto, startService } from './helpers/harness.js';

const moto = await startMoto();
const service = await startService(moto.url);
t.teardown(async () => {
  await service.close();
  await moto.stop();
});
const inject = service.app.inject.bind(service.app);

t.test('POST /instances?wait=true launches and answers 201 with the task', async (t) => {
  const res = await inject({ method: 'POST', url: '/instances?wait=true', payload: VALID });
  t.equal(res.statusCode, 201, res.body);
  const task = res.json();
  t.match(task, { action: 'create', status: 'succeeded', ip: String, instance_id: /^i-/, instance_state: 'running' });
  t.equal(res.headers.location, `/tasks/${task.task_id}`);
});

t.test('POST /instances answers 202 at once; GET /instances lists what the service manages', async (t) => {
  const res = await inject({ method: 'POST', url: '/instances', payload: VALID });
  t.equal(res.statusCode, 202);
  t.match(res.json(), { status: 'queued', action: 'create' });
  const id = res.json().task_id;
  await eventuallyAsync(async () => (await service.tasks.get(id))?.status === 'succeeded', 60_000, 'the create');
  const foreign = launchUntagged(moto.url);

  const list = await inject({ url: '/instances' });
  t.equal(list.statusCode, 200, list.body);
  const listed = list.json().instances as { instance_id: string; task_id: string; public_ip: string; state: string; launch_time: string }[];
  const mine = listed.find((i) => i.task_id === id);
  t.match(mine, { instance_id: (await service.tasks.get(id))!.instance_id, public_ip: String, state: 'running', launch_time: String });
  t.notOk(listed.some((i) => i.instance_id === foreign.id), 'an instance it did not create is not listed');
  t.equal(listed.length, instances(moto.url).filter((i) => i.tags.ManagedBy === 'ec2-api' && i.state !== 'terminated').length);
});

t.test('DELETE /instances/<ip>?wait=true terminates (200), then 404; without wait 202', async (t) => {
  const created = (await inject({ method: 'POST', url: '/instances?wait=true', payload: VALID })).json();
  const res = await inject({ method: 'DELETE', url: `/instances/${created.ip}?wait=true` });
  t.equal(res.statusCode, 200, res.body);
  t.match(res.json(), { action: 'delete', status: 'succeeded', instance_state: 'terminated', instance_id: created.instance_id });
  const again = await inject({ method: 'DELETE', url: `/instances/${created.ip}?wait=true` });
  t.equal(again.statusCode, 404);
  t.match(again.json(), { status: 'failed', instance_state: 'not_found' });
  const queued = await inject({ method: 'DELETE', url: `/instances/${created.ip}` });
  t.equal(queued.statusCode, 202);
  t.equal(queued.headers.location, `/tasks/${queued.json().task_id}`);
  t.equal((await inject({ method: 'DELETE', url: '/instances/300.1.1.1' })).statusCode, 400);
  t.equal((await inject({ method: 'POST', url: '/instances?wait=maybe', payload: VALID })).statusCode, 400);
});

t.test('GET /instances answers 502 when EC2 cannot be read', async (t) => {
  const refusing = await ec2Proxy(moto.url, { refuseAll: true });
  const broken = await startService(refusing.url);
  t.teardown(async () => {
    await broken.close();
    await refusing.close();
  });
  const res = await broken.app.inject({ url: '/instances' });
  t.equal(res.statusCode, 502);
  t.match(res.json(), { error: /could not list the instances.*AuthFailure/ });
});

t.test('GET /instances: callers at once share one playbook run, a fresh result is reused, the run counts', async (t) => {
  const runs: string[] = [];
  t.teardown(service.tasks.onRun((report) => report.playbook === 'list' && runs.push(report.playbook)));
  // Nothing left running from the tests before (a task ending would rightly make the next listing a fresh read),
  // and older than any listing they made.
  await eventuallyAsync(async () => (await service.tasks.list({ status: 'running', limit: 1 })).length + (await service.tasks.list({ status: 'queued', limit: 1 })).length === 0, 60_000, 'the earlier tasks to end');
  await new Promise((resolve) => setTimeout(resolve, 3_100));

  let peak = 0;
  const sampling = setInterval(() => void service.tasks.stats().then(({ runningPlaybooks }) => (peak = Math.max(peak, runningPlaybooks))), 20);
  const answers = await Promise.all(Array.from({ length: 24 }, () => inject({ url: '/instances' })));
  clearInterval(sampling);
  t.same([...new Set(answers.map((a) => a.statusCode))], [200]);
  t.equal(new Set(answers.map((a) => a.body)).size, 1, 'every caller got the same listing');
  t.same(runs, ['list'], '24 concurrent calls, one ansible-playbook');
  t.equal(peak, 1, 'counted in running_playbooks while it ran');
  t.equal((await inject({ url: '/instances' })).statusCode, 200);
  t.same(runs, ['list'], 'a listing less than 3 s old is reused');
  const created = await inject({ method: 'POST', url: '/instances?wait=true', payload: VALID });
  t.equal(created.statusCode, 201);
  const after = (await inject({ url: '/instances' })).json().instances as { instance_id: string }[];
  t.ok(after.some((i) => i.instance_id === created.json().instance_id), 'once a task has changed EC2, the next listing is a fresh read that shows it');
  const metrics = (await inject({ url: '/metrics' })).body;
  t.match(metrics, /ec2_api_playbook_duration_seconds_count\{action="list",outcome="ok"\} [1-9]/, 'and in /metrics');
});

t.test('GET /instances waits for a free playbook slot, and is stopped at shutdown', async (t) => {
  const hanging = await startService(moto.url, {
    EC2_API_CONCURRENCY: '1',
    EC2_API_PLAYBOOK_DIR: path.join(projectRoot, 'test', 'fixtures', 'hanging-playbooks'),
  });
  const task = (await hanging.app.inject({ method: 'POST', url: '/create-async', payload: VALID })).json().task_id;
  await eventuallyAsync(async () => (await hanging.tasks.stats()).runningPlaybooks === 1, 30_000, 'the hanging playbook');
  let answered = false;
  const listing = hanging.app.inject({ url: '/instances' }).then((res) => {
    answered = true;
    return res;
  });
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  t.notOk(answered, 'EC2_API_CONCURRENCY=1 is taken: the listing waits');
  t.equal((await hanging.tasks.stats()).runningPlaybooks, 1, 'no second playbook started');
  await hanging.close(); // EC2_API_SHUTDOWN_GRACE=0: every playbook, waiting or running, is stopped
  const res = await listing;
  t.equal(res.statusCode, 503, 'the waiting listing is stopped by the shutdown');
  t.match(res.json(), { error: /shutting down/ });
  const db = new Database(hanging.config.dbPath, { readonly: true });
  t.teardown(() => db.close());
  t.match(db.prepare('SELECT status FROM tasks WHERE id = ?').get(task), { status: 'queued' }, 'the hanging task waits for the next start');
});
