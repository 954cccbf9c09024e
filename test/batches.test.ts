// Batched launches: tasks waiting together run in one ansible-playbook, yet
// each gets its own instance, result and failure; a batch re-run after a
// crash adopts its instances; EC2 throttling is retried, not failed.
import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import {
  VALID,
  eventually,
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

const moto = await startMoto();
t.teardown(() => moto.stop());

const terminal = (service: Awaited<ReturnType<typeof startService>>, id: string) => untilTerminal(service.tasks, id);

t.test('one batch, one playbook run; a member whose stored row is damaged fails alone, with a clear error', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const paused = await startService(moto.url, { EC2_API_DB: db, EC2_API_PAUSED: '1' });
  const submit = async (username: string) => (await paused.tasks.createTask({ username, password: 'suitepad' })).task.id;
  const ids = [await submit('anna'), await submit('bert'), await submit('carl')];
  await paused.close();
  // As a hand-edited or damaged database would hold it: the row no longer has what a create needs.
  const conn = new Database(db);
  conn.prepare(`UPDATE tasks SET params = '{"username": "bert"}' WHERE id = ?`).run(ids[1]);
  conn.close();

  const service = await startService(moto.url, { EC2_API_DB: db });
  t.teardown(() => service.close());
  const runs: string[] = [];
  service.tasks.onRun((report) => runs.push(`${report.playbook}:${report.tasks}`));
  const [anna, bert, carl] = await Promise.all(ids.map((id) => terminal(service, id)));
  await eventually(() => runs.length > 0, 30_000, 'the run to end'); // results come before the run ends
  t.same(runs, ['create:2'], 'the two sound tasks went through one ansible-playbook run');
  t.match(anna, { status: 'succeeded', instance_state: 'running' });
  t.match(carl, { status: 'succeeded', instance_state: 'running' });
  t.match(bert, { status: 'failed', error: /does not hold valid parameters.*it was not run/ });
  t.not(anna!.instance_id, carl!.instance_id, 'each member has its own instance');
  t.equal(liveInstancesOfTask(moto.url, ids[1]!).length, 0, 'nothing was launched on bad data');
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

t.test('waiting tasks share one run (up to EC2_API_BATCH_SIZE), the rest the next', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const paused = await startService(moto.url, { EC2_API_DB: db, EC2_API_PAUSED: '1' });
  const ids: string[] = [];
  for (let i = 0; i < 7; i++) ids.push((await paused.app.inject({ method: 'POST', url: '/create-async', payload: VALID })).json().task_id);
  await paused.close();

  const service = await startService(moto.url, { EC2_API_DB: db, EC2_API_BATCH_SIZE: '5' });
  t.teardown(() => service.close());
  const sizes: number[] = [];
  service.tasks.onRun((report) => sizes.push(report.tasks));
  const tasks = await Promise.all(ids.map((id) => terminal(service, id)));
  t.ok(tasks.every((task) => task.status === 'succeeded'));
  await eventually(() => sizes.length === 2, 30_000, 'both runs to end');
  // With a free slot the other two need not wait for the five: the runs may end in either order.
  t.same([...sizes].sort((a, b) => b - a), [5, 2], 'one run of five, and one of the other two');
  t.ok(tasks[0]!.started_at! < tasks[6]!.started_at!, 'the oldest ran first');
});
