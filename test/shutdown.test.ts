// Graceful shutdown of the built server on SIGTERM/SIGINT: running playbooks
// get the grace period, then are stopped and their tasks requeued; the
// emulator the service started is stopped; the process exits 0.
import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { projectRoot } from '../src/config.js';
import { VALID, eventually, eventuallyAsync, spawnServer, startMoto, startService, tempDir } from './helpers/harness.js';
import { processGroup } from './helpers/processes.js';

const moto = await startMoto();
t.teardown(() => moto.stop());
const hanging = path.join(projectRoot, 'test', 'fixtures', 'hanging-playbooks');

function taskRow(db: string, id: string) {
  const conn = new Database(db, { readonly: true });
  try {
    return conn.prepare('SELECT status, attempts, runner_pid FROM tasks WHERE id = ?').get(id) as {
      status: string;
      attempts: number;
      runner_pid: number | null;
    };
  } finally {
    conn.close();
  }
}

const createAsync = async (url: string) => {
  const res = await fetch(`${url}/create-async`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(VALID) });
  return { status: res.status, body: (await res.json()) as { task_id: string; error?: string } };
};

t.test('SIGTERM past the grace period: the playbook is stopped, the task requeued, exit 0', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url, EC2_API_PLAYBOOK_DIR: hanging, EC2_API_SHUTDOWN_GRACE: '1' });
  const { body } = await createAsync(server.url);
  const pgid = await eventually(() => taskRow(db, body.task_id).runner_pid, 30_000, 'the playbook to run');
  await eventually(() => processGroup(pgid).length > 2, 30_000, 'the hanging step to run');

  server.child.kill('SIGTERM');
  t.equal(await server.exited, 0, 'exit code 0');
  t.same(processGroup(pgid), [], 'the playbook tree is gone');
  const row = taskRow(db, body.task_id);
  t.equal(row.status, 'queued', 'the task waits for the next start');
  t.equal(row.attempts, 0, 'a shutdown does not count as a failed attempt');
  t.equal(row.runner_pid, null);

  const restarted = await startService(moto.url, { EC2_API_DB: db });
  t.teardown(() => restarted.close());
  const done = await eventuallyAsync(async () => {
    const task = (await restarted.tasks.get(body.task_id));
    return task?.status === 'succeeded' ? task : undefined;
  }, 120_000, 'the requeued task to run after the restart');
  t.equal(done.attempts, 1);
});

t.test('SIGINT within the grace period: the running playbook finishes, new tasks are refused', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url, EC2_API_SHUTDOWN_GRACE: '120' });
  const { body } = await createAsync(server.url);
  await eventually(() => taskRow(db, body.task_id).runner_pid, 30_000, 'the playbook to run');

  server.child.kill('SIGINT');
  // While the playbook finishes, the API still answers, and refuses new work.
  await eventuallyAsync(async () => {
    const health = (await (await fetch(`${server.url}/healthz`)).json()) as { accepting: boolean };
    return !health.accepting;
  }, 10_000, 'the service to stop accepting');
  const late = await fetch(`${server.url}/create-async`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(VALID) });
  t.equal(late.status, 503, 'a new task during shutdown is refused');
  t.ok(late.headers.get('retry-after'), 'with Retry-After');
  t.match(await late.json(), { error: /shutting down/ });
  t.equal(await server.exited, 0, 'exit code 0');
  t.notOk(fs.existsSync(`${db}-wal`), 'the database was closed cleanly (WAL checkpointed and removed)');
  t.equal(taskRow(db, body.task_id).status, 'succeeded', 'the running task finished within the grace period');
});

t.test('the emulator the service started is stopped with it', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const server = await spawnServer({ EC2_API_DB: db, EC2_API_CLOUD: 'local' });
  const health = (await (await fetch(`${server.url}/healthz`)).json()) as { cloud: { kind: string; endpoint: string } };
  t.equal(health.cloud.kind, 'local-emulator');
  t.ok(await fetch(health.cloud.endpoint).then(() => true, () => false), 'the emulator answers');
  t.match(server.output(), /LOCAL EC2 EMULATOR/, 'start-up says loudly that it is the emulator');

  server.child.kill('SIGTERM');
  t.equal(await server.exited, 0);
  t.notOk(await fetch(health.cloud.endpoint).then(() => true, () => false), 'the emulator is gone');
});

/** Reads an SSE response to its end; the raw text. */
async function readStream(res: Response): Promise<string> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return text;
    text += decoder.decode(value, { stream: true });
  }
}

t.test('open event streams end with `stopping` at shutdown, and do not hold the process', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url, EC2_API_PAUSED: '1', EC2_API_SHUTDOWN_GRACE: '2' });
  const { body } = await createAsync(server.url);
  const one = await fetch(`${server.url}/tasks/${body.task_id}/events`);
  const all = await fetch(`${server.url}/events`);
  const reading = [readStream(one), readStream(all)];
  const started = Date.now();
  server.child.kill('SIGTERM');
  const [oneText, allText] = await Promise.all(reading);
  for (const [what, text] of [['/tasks/<id>/events', oneText], ['/events', allText]] as const) {
    t.match(text, /retry: \d+\nevent: stopping\ndata: \{"message":"the service is shutting down; reconnect/, `${what} ends with a stopping event`);
  }
  t.match(oneText, /event: status\ndata: \{[^\n]*"status":"queued"/, 'a new client of a queued task first learned its status');
  t.equal(await server.exited, 0, 'exit 0');
  const seconds = (Date.now() - started) / 1000;
  t.ok(seconds < 2 + 5, `the process exited within EC2_API_SHUTDOWN_GRACE + 5 s (${seconds.toFixed(1)} s)`);
});

t.test('a second SIGTERM exits at once: the playbook is killed first and its task requeued', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url, EC2_API_PLAYBOOK_DIR: hanging, EC2_API_SHUTDOWN_GRACE: '120' });
  const { body } = await createAsync(server.url);
  const pgid = await eventually(() => taskRow(db, body.task_id).runner_pid, 30_000, 'the playbook to run');
  await eventually(() => processGroup(pgid).length > 2, 30_000, 'the hanging step to run');
  server.child.kill('SIGTERM');
  await eventuallyAsync(async () => !((await (await fetch(`${server.url}/healthz`)).json()) as { accepting: boolean }).accepting, 10_000, 'the shutdown to begin');
  const late = await fetch(`${server.url}/events`);
  t.equal(late.status, 503, 'a client reconnecting to the feed while it stops is told to come back later (it would hold the close)');
  t.ok(late.headers.get('retry-after'));
  const started = Date.now();
  server.child.kill('SIGTERM');
  await server.exited;
  const seconds = (Date.now() - started) / 1000;
  t.ok(seconds < 3, `exited ${seconds.toFixed(1)} s after the second signal, not after the 120 s grace`);
  t.same(processGroup(pgid), [], 'the playbook tree was killed');
  t.match(taskRow(db, body.task_id), { status: 'queued', attempts: 0, runner_pid: null }, 'the task waits for the next start, its attempt given back');
});

t.test('whatever the playbook does, the process exits within EC2_API_SHUTDOWN_GRACE + 5 s', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url, EC2_API_PLAYBOOK_DIR: hanging, EC2_API_SHUTDOWN_GRACE: '3' });
  const { body } = await createAsync(server.url);
  const pgid = await eventually(() => taskRow(db, body.task_id).runner_pid, 30_000, 'the playbook to run');
  await eventually(() => processGroup(pgid).length > 2, 30_000, 'the hanging step to run');
  const stream = fetch(`${server.url}/events`).then(readStream); // a client that would hold the close
  const started = Date.now();
  server.child.kill('SIGTERM');
  await server.exited;
  const seconds = (Date.now() - started) / 1000;
  t.ok(seconds >= 3 && seconds < 3 + 5, `exited after ${seconds.toFixed(1)} s`);
  t.match(await stream, /event: stopping/);
  t.same(processGroup(pgid), [], 'no process of the run is left');
  t.equal(taskRow(db, body.task_id).status, 'queued');
});
