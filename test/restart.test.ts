// Crash recovery: the built server runs as its own process and is killed
// with SIGKILL mid-work; a new service on the same database file must finish
// every accepted task, with exactly one instance per create task.
import Database from 'better-sqlite3';
import path from 'node:path';
import t, { type Test } from 'tap';
import {
  VALID,
  eventually,
  eventuallyAsync,
  isAlive,
  liveInstanceIds,
  liveInstancesOfTask,
  sleep,
  spawnServer,
  startMoto,
  startService,
  tempDir,
  untilTerminal,
} from './helpers/harness.js';

const moto = await startMoto();
t.teardown(() => moto.stop());

interface Row {
  status: string;
  runner_pid: number | null;
  attempts: number;
}

function readTask(db: string, id: string): Row {
  const conn = new Database(db, { readonly: true });
  try {
    return conn.prepare('SELECT status, runner_pid, attempts FROM tasks WHERE id = ?').get(id) as Row;
  } finally {
    conn.close();
  }
}

async function createAsync(url: string): Promise<string> {
  const res = await fetch(`${url}/create-async`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(VALID) });
  if (res.status !== 202) throw new Error(`expected 202, got ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { task_id: string }).task_id;
}

async function finishAfterRestart(t: Test, db: string, ids: string[]) {
  const service = await startService(moto.url, { EC2_API_DB: db });
  t.teardown(() => service.close());
  return Promise.all(ids.map((id) => untilTerminal(service.tasks, id, 180_000)));
}

t.test('killed after launching, before recording: the re-run adopts the instance', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url });
  const id = await createAsync(server.url);

  // The instance exists in EC2 while the playbook is still collecting results.
  const [launched] = await eventuallyAsync(async () => {
    const ids = await liveInstanceIds(moto.url, id);
    return ids.length ? ids : undefined;
  }, 60_000, 'the instance to appear');
  server.child.kill('SIGKILL');
  await server.exited;
  const row = readTask(db, id);
  t.equal(row.status, 'running', 'the dead process left the task running');

  const [task] = await finishAfterRestart(t, db, [id]);
  t.equal(task!.status, 'succeeded', task!.error ?? '');
  t.equal(task!.instance_id, launched, 'the task reports the instance the first run launched');
  t.equal(liveInstancesOfTask(moto.url, id).length, 1, 'no second instance');
  t.ok(row.runner_pid, 'the dead process had recorded its playbook');
  t.notOk(isAlive(row.runner_pid!), 'no playbook of the dead process is left');
});

t.test('killed mid-run with the orphaned playbook still alive: it is stopped before the re-run', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url });
  const id = await createAsync(server.url);
  const pid = await eventually(() => readTask(db, id).runner_pid, 30_000, 'the playbook to start');
  server.child.kill('SIGKILL');
  await server.exited;
  t.ok(isAlive(pid), 'the orphaned ansible-playbook outlived the service');

  const [task] = await finishAfterRestart(t, db, [id]);
  t.equal(task!.status, 'succeeded', task!.error ?? '');
  t.notOk(isAlive(pid), 'the orphan was killed');
  t.equal(liveInstancesOfTask(moto.url, id).length, 1, 'exactly one instance for the task');
  t.equal(task!.attempts, 2, 'the task ran twice');
});

t.test('killed mid-run together with its playbook: the task runs again, one instance', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url });
  const id = await createAsync(server.url);
  const pid = await eventually(() => readTask(db, id).runner_pid, 30_000, 'the playbook to start');
  await sleep(1_500); // well into the run
  server.child.kill('SIGKILL');
  process.kill(-pid, 'SIGKILL'); // the playbook's whole process group dies too
  await server.exited;

  const [task] = await finishAfterRestart(t, db, [id]);
  t.equal(task!.status, 'succeeded', task!.error ?? '');
  t.equal(liveInstancesOfTask(moto.url, id).length, 1, 'exactly one instance for the task');
});

t.test('killed with tasks queued (paused): every 202 runs after the restart', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url, EC2_API_PAUSED: '1' });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(await createAsync(server.url));
  server.child.kill('SIGKILL');
  await server.exited;

  const tasks = await finishAfterRestart(t, db, ids);
  for (const task of tasks) {
    t.equal(task.status, 'succeeded', `${task.id}: ${task.error ?? 'ok'}`);
    t.equal(liveInstancesOfTask(moto.url, task.id).length, 1, 'one instance');
  }
});

t.test('a task interrupted EC2_API_MAX_ATTEMPTS times is failed, not run again', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const paused = await startService(moto.url, { EC2_API_DB: db, EC2_API_PAUSED: '1' });
  const id = (await paused.app.inject({ method: 'POST', url: '/create-async', payload: VALID })).json().task_id;
  await paused.close();
  // As three crashes in a row would leave it: running, three attempts made.
  const conn = new Database(db);
  conn.prepare("UPDATE tasks SET status = 'running', attempts = 3 WHERE id = ?").run(id);
  conn.close();

  const service = await startService(moto.url, { EC2_API_DB: db, EC2_API_MAX_ATTEMPTS: '3' });
  t.teardown(() => service.close());
  const task = (await service.tasks.get(id))!;
  t.equal(task.status, 'failed');
  t.match(task.error, /abandoned after 3 interrupted attempts/);
  t.same(await liveInstanceIds(moto.url, id), [], 'it did not run again');
});
