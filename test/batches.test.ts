// Batched launches: tasks waiting together run in one ansible-playbook, yet
// each gets its own instance, result and failure; a batch re-run after a
// crash adopts its instances; EC2 throttling is retried, not failed.
import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import {
  VALID,
  ec2Proxy,
  eventuallyAsync,
  liveInstanceIds,
  liveInstancesOfTask,
  spawnServer,
  startMoto,
  startService,
  tempDir,
  untilTerminal,
} from './helpers/harness.js';
import { sha512Crypt } from '../src/http/password.js';

const moto = await startMoto();
t.teardown(() => moto.stop());

const terminal = (service: Awaited<ReturnType<typeof startService>>, id: string) => untilTerminal(service.runtime.service, id);

t.test('one batch, one playbook run: a bad member fails alone, the others succeed', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const paused = await startService(moto.url, { EC2_API_DB: db, EC2_API_PAUSED: '1' });
  const hash = sha512Crypt('suitepad');
  const submit = async (username: string) => (await paused.runtime.service.submitCreate({ username, password: 'suitepad', password_hash: hash })).task.id;
  // The HTTP layer would refuse this name; the playbook refuses it too, for this member only.
  const ids = [await submit('anna'), await submit('Not Valid!'), await submit('carl')];
  await paused.close();

  // One worker: the three waiting tasks make one batch (with more workers they would be spread).
  const service = await startService(moto.url, { EC2_API_DB: db, EC2_API_CONCURRENCY: '1' });
  t.teardown(() => service.close());
  const runs: string[] = [];
  service.runtime.service.runs.on('run', (report) => runs.push(report.action));
  const [anna, bad, carl] = await Promise.all(ids.map((id) => terminal(service, id)));
  t.same(runs, ['create'], 'all three went through one ansible-playbook run');
  t.match(anna, { status: 'succeeded', instance_state: 'running' });
  t.match(carl, { status: 'succeeded', instance_state: 'running' });
  t.match(bad, { status: 'failed', error: /invalid input: username/ });
  t.not(anna!.instance_id, carl!.instance_id, 'each member has its own instance');
  t.equal(liveInstancesOfTask(moto.url, ids[1]!).length, 0);
});

t.test('a batch killed mid-run: after the restart, one instance per task', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const paused = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url, EC2_API_PAUSED: '1' });
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const res = await fetch(`${paused.url}/create-async`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(VALID) });
    ids.push(((await res.json()) as { task_id: string }).task_id);
  }
  paused.child.kill('SIGTERM');
  await paused.exited;

  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url });
  // Kill once the batch has launched some but not all of its instances, or all of them.
  await eventuallyAsync(async () => (await liveInstanceIds(moto.url, ids[1]!)).length > 0, 60_000, 'the batch to launch');
  server.child.kill('SIGKILL');
  await server.exited;
  const conn = new Database(db, { readonly: true });
  const statuses = ids.map((id) => (conn.prepare('SELECT status FROM tasks WHERE id = ?').get(id) as { status: string }).status);
  conn.close();
  t.ok(statuses.includes('running'), `the crash interrupted the batch (${statuses.join(', ')})`);

  const service = await startService(moto.url, { EC2_API_DB: db });
  t.teardown(() => service.close());
  for (const id of ids) {
    const task = await terminal(service, id);
    t.equal(task.status, 'succeeded', task.error ?? '');
    t.equal(liveInstancesOfTask(moto.url, id).length, 1, 'exactly one instance');
  }
});

t.test('RequestLimitExceeded from EC2 is retried with backoff, not turned into a failure', async (t) => {
  const proxy = await ec2Proxy(moto.url, { action: 'RunInstances', throttle: 2 });
  const service = await startService(proxy.url);
  t.teardown(async () => {
    await service.close();
    await proxy.close();
  });
  const res = await service.app.inject({ method: 'POST', url: '/create', payload: VALID });
  t.equal(res.statusCode, 200, res.body);
  t.equal(proxy.calls('RunInstances'), 3, 'two throttled calls, then the one that launched');
  t.equal(liveInstancesOfTask(moto.url, res.json().task_id).length, 1);
});

t.test('waiting tasks are spread over the free workers', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const paused = await startService(moto.url, { EC2_API_DB: db, EC2_API_PAUSED: '1' });
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) ids.push((await paused.app.inject({ method: 'POST', url: '/create-async', payload: VALID })).json().task_id);
  await paused.close();

  const service = await startService(moto.url, { EC2_API_DB: db, EC2_API_CONCURRENCY: '2' });
  t.teardown(() => service.close());
  const sizes: number[] = [];
  service.runtime.service.runs.on('run', (report) => sizes.push(report.tasks));
  const tasks = await Promise.all(ids.map((id) => terminal(service, id)));
  t.ok(tasks.every((task) => task.status === 'succeeded'));
  t.same(sizes, [3, 3], 'two runs of three, side by side');
});
