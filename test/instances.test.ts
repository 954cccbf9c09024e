// The resource routes: GET /instances reads EC2 through list.yml; POST
// /instances and DELETE /instances/<ip> are the same tasks as the
// compatibility routes, answered with the task document.
import t from 'tap';
import { VALID, ec2Proxy, eventually, instances, launchUntagged, startMoto, startService } from './helpers/harness.js';

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
  await eventually(() => service.tasks.get(id)?.status === 'succeeded', 60_000, 'the create');
  const foreign = launchUntagged(moto.url);

  const list = await inject({ url: '/instances' });
  t.equal(list.statusCode, 200, list.body);
  const listed = list.json().instances as { instance_id: string; task_id: string; public_ip: string; state: string; launch_time: string }[];
  const mine = listed.find((i) => i.task_id === id);
  t.match(mine, { instance_id: service.tasks.get(id)!.instance_id, public_ip: String, state: 'running', launch_time: String });
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
