// Every refusal of a create answers and leaves the service running: 400,
// 409, 503 (queue full), 503 (shutting down) and 500 (the commit failed),
// with and without an Idempotency-Key, on /create, /create-async and
// POST /instances. The built server runs as its own process, so a crash
// (an unhandled rejection) would show as an exit.
import Database from 'better-sqlite3';
import path from 'node:path';
import t, { type Test } from 'tap';
import { projectRoot } from '../src/config.js';
import { VALID, eventuallyAsync, spawnServer, startMoto, tempDir, type ServerProcess } from './helpers/harness.js';

const moto = await startMoto();
t.teardown(() => moto.stop());

const ROUTES = ['/create', '/create-async', '/instances'] as const;
let keys = 0;

async function create(server: ServerProcess, route: string, body: object, key?: string) {
  const res = await fetch(`${server.url}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as { error?: string; task_id?: string }, retryAfter: res.headers.get('retry-after') };
}

/** The process is up and answers, and never reported an unhandled rejection. */
async function stillUp(t: Test, server: ServerProcess, what: string) {
  t.equal(server.child.exitCode, null, `${what}: the process is still running`);
  const health = await fetch(`${server.url}/healthz`).then((res) => res.status, () => 0);
  t.equal(health, 200, `${what}: /healthz answers`);
  t.notMatch(server.output(), /unhandled|UnhandledPromiseRejection/i, `${what}: no unhandled rejection`);
}

/** Each route, without a key and with a fresh one. */
const cases = () => ROUTES.flatMap((route) => [undefined, `key-${++keys}`].map((key) => ({ route, key, what: `${route} ${key ? 'with' : 'without'} a key` })));

t.test('400, 409, 503 (full) and 500 answer, and the service keeps running', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url, EC2_API_PAUSED: '1', EC2_API_MAX_QUEUED: '2' });
  t.teardown(() => server.child.kill('SIGKILL'));

  for (const { route, key, what } of cases()) {
    const res = await create(server, route, { ...VALID, username: 'root' }, key);
    t.equal(res.status, 400, `${what}: a system account is refused`);
    t.match(res.body.error, /system account/);
    await stillUp(t, server, `400 on ${what}`);
  }

  const first = await create(server, '/create-async', VALID, 'taken');
  t.equal(first.status, 202);
  for (const route of ROUTES) {
    const res = await create(server, route, { ...VALID, password: 'another-password' }, 'taken');
    t.equal(res.status, 409, `${route}: the key with another body`);
    await stillUp(t, server, `409 on ${route}`);
  }

  t.equal((await create(server, '/create-async', VALID)).status, 202, 'the queue is full now (EC2_API_MAX_QUEUED=2)');
  for (const { route, key, what } of cases()) {
    const res = await create(server, route, VALID, key);
    t.equal(res.status, 503, `${what}: queue full`);
    t.match(res.body.error, /EC2_API_MAX_QUEUED/);
    t.ok(res.retryAfter, 'with Retry-After');
    await stillUp(t, server, `503 on ${what}`);
  }

  // Room again, and a commit that fails (as a full disk would): a second connection adds a trigger.
  const conn = new Database(db);
  t.teardown(() => conn.close());
  const queued = (conn.prepare(`SELECT id FROM tasks WHERE status = 'queued'`).all() as { id: string }[]).map((row) => row.id);
  for (const id of queued) t.equal((await fetch(`${server.url}/tasks/${id}/cancel`, { method: 'POST' })).status, 200);
  conn.exec(`CREATE TRIGGER boom BEFORE INSERT ON tasks BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END`);
  for (const { route, key, what } of cases()) {
    const res = await create(server, route, VALID, key);
    t.equal(res.status, 500, `${what}: the commit failed`);
    t.same(res.body, { error: 'internal error; the service log has the details' });
    await stillUp(t, server, `500 on ${what}`);
  }
  conn.exec('DROP TRIGGER boom');
  const after = await create(server, '/create-async', VALID, `key-${++keys}`);
  t.equal(after.status, 202, 'and once the failure is gone, a keyed create is accepted again');
});

t.test('503 while shutting down answers, and the process then exits cleanly', async (t) => {
  const server = await spawnServer({
    EC2_API_DB: path.join(tempDir(), 'ec2-api.db'),
    AWS_ENDPOINT_URL: moto.url,
    EC2_API_PLAYBOOK_DIR: path.join(projectRoot, 'test', 'fixtures', 'hanging-playbooks'),
    EC2_API_SHUTDOWN_GRACE: '8',
  });
  t.teardown(() => server.child.kill('SIGKILL'));
  // A hanging playbook holds the shutdown open for its grace period.
  t.equal((await create(server, '/create-async', VALID)).status, 202);
  const health = async () => (await (await fetch(`${server.url}/healthz`)).json()) as { accepting: boolean; running_playbooks: number };
  await eventuallyAsync(async () => (await health()).running_playbooks > 0, 30_000, 'the playbook to start');
  server.child.kill('SIGTERM');
  await eventuallyAsync(async () => !(await health()).accepting, 10_000, 'the service to stop accepting');
  for (const { route, key, what } of cases()) {
    const res = await create(server, route, VALID, key);
    t.equal(res.status, 503, `${what}: refused while shutting down`);
    t.match(res.body.error, /shutting down/);
    await stillUp(t, server, `503 (shutting down) on ${what}`);
  }
  t.equal(await server.exited, 0, 'then it exits 0, as a graceful stop');
});
