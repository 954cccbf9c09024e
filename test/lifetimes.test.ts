// Instances that end themselves (docs/task-lifecycle.md, "Expiry"), and the
// instance cap: real runs on moto. A ttl is at least a minute, so a test that
// needs an expiry to pass moves that one create's `expires_at` into the past
// in the database, as the passing of time would; the service's own timer
// does the rest.
import path from 'node:path';
import t from 'tap';
import { openDatabase } from '../src/tasks/db.js';
import type { Task } from '../src/tasks/model.js';
import {
  VALID,
  eventually, eventuallyAsync,
  liveInstanceIds,
  startMoto,
  startService,
  tempDir,
  untilTerminal,
  type TestService,
} from './helpers/harness.js';

const moto = await startMoto();
const service: TestService = await startService(moto.url);
t.teardown(async () => {
  await service.close();
  await moto.stop();
});

type Inject = TestService['app']['inject'];
const injectOf = (s: TestService): Inject => s.app.inject.bind(s.app) as Inject;
const inject = injectOf(service);

/** Launches one instance and waits for it: its create task as the API shows it. */
async function launch(s: TestService, body: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  const res = await injectOf(s)({ method: 'POST', url: '/instances?wait=true', payload: { ...VALID, ...body } });
  if (res.statusCode !== 201) throw new Error(`launch failed: ${res.statusCode} ${res.body}`);
  return res.json();
}

/** As if the time had come: the create's expiry is set a second in the past. */
function timePasses(db: TestService['db'], createId: string): void {
  db.prepare('UPDATE tasks SET expires_at = ? WHERE id = ?').run(new Date(Date.now() - 1000).toISOString(), createId);
}

const deletesOf = (s: TestService, ip: string): Promise<Task[]> => s.tasks.list({ action: 'delete', ip, limit: 500 });
const seconds = (iso: unknown) => new Date(String(iso)).getTime() / 1000;

t.test('a bad ttl is a 400 naming the field, on every create route and PATCH, and queues nothing', async (t) => {
  const before = (await service.tasks.list({ limit: 500 })).length;
  const routes = [
    { method: 'POST' as const, url: '/create-async' },
    { method: 'POST' as const, url: '/create' },
    { method: 'POST' as const, url: '/instances' },
  ];
  for (const ttl of [59, 2_592_001, '3600', 90.5, null, -60]) {
    for (const route of routes) {
      const res = await inject({ ...route, payload: { ...VALID, ttl } });
      t.equal(res.statusCode, 400, `${route.url} ttl=${JSON.stringify(ttl)}`);
      t.equal(res.json().field, 'ttl');
      t.match(res.json().error, /ttl is not valid: it must be a whole number of seconds from 60 \(a minute\) to 2592000 \(30 days\)/);
    }
    const patch = await inject({ method: 'PATCH', url: '/instances/54.1.2.3', payload: { ttl } });
    t.equal(patch.statusCode, 400, `PATCH ttl=${JSON.stringify(ttl)}`);
    t.equal(patch.json().field, 'ttl');
  }
  const missing = await inject({ method: 'PATCH', url: '/instances/54.1.2.3', payload: {} });
  t.equal(missing.statusCode, 400);
  t.same(missing.json().field, 'ttl', 'PATCH without ttl: the field is named');
  t.equal((await service.tasks.list({ limit: 500 })).length, before, 'no task was stored');
});

t.test("expires_at: the create's ttl from acceptance, in /status and GET /instances; PATCH moves it to now + ttl", async (t) => {
  const plain = await launch(service);
  t.equal(plain.expires_at, null, 'no ttl and no EC2_API_DEFAULT_TTL: no expiry');

  const created = await launch(service, { ttl: 3600 });
  const id = String(created.task_id);
  const ip = String(created.ip);
  t.ok(Math.abs(seconds(created.expires_at) - seconds(created.created_at) - 3600) < 5, 'expires_at = accepted + ttl');
  const status = (await inject({ url: `/status/${id}` })).json();
  t.equal(status.expires_at, created.expires_at, '/status shows it');
  const listed = (await inject({ url: '/instances' })).json().instances.find((i: { public_ip: string }) => i.public_ip === ip);
  t.equal(listed?.expires_at, created.expires_at, 'GET /instances shows it');
  t.equal(listed?.created_by, 'default');

  const asked = Date.now() / 1000;
  const patched = await inject({ method: 'PATCH', url: `/instances/${ip}`, payload: { ttl: 7200 } });
  t.equal(patched.statusCode, 200);
  t.match(patched.json(), { ip, task_id: id, instance_id: created.instance_id, created_by: 'default' });
  t.ok(Math.abs(seconds(patched.json().expires_at) - asked - 7200) < 5, 'expires_at = now + ttl');
  t.equal((await inject({ url: `/status/${id}` })).json().expires_at, patched.json().expires_at, '/status shows the new expiry');
  const relisted = (await inject({ url: '/instances' })).json().instances.find((i: { public_ip: string }) => i.public_ip === ip);
  t.equal(relisted?.expires_at, patched.json().expires_at, 'GET /instances shows the new expiry');

  const unknown = await inject({ method: 'PATCH', url: '/instances/203.0.113.9', payload: { ttl: 600 } });
  t.equal(unknown.statusCode, 404);
  t.match(unknown.json().error, /no instance managed by ec2-api has public IP 203\.0\.113\.9/);
});

t.test('when it passes: one delete task with reason "expired", in /tasks and the events, and the instance is terminated', async (t) => {
  const created = await launch(service, { ttl: 60 });
  const id = String(created.task_id);
  const ip = String(created.ip);
  t.same(await liveInstanceIds(moto.url, id), [created.instance_id], 'the instance runs');
  t.same(await deletesOf(service, ip), [], 'no delete before the expiry');

  timePasses(service.db, id);
  const expired = await eventuallyAsync(async () => (await deletesOf(service, ip))[0], 10_000, 'the expiry to queue a delete');
  t.match(expired, { action: 'delete', reason: 'expired', created_by: 'default', ip });
  const ended = await untilTerminal(service.tasks, expired.id);
  t.equal(ended.status, 'succeeded');
  t.equal(ended.instance_state, 'terminated');
  t.same(await liveInstanceIds(moto.url, id), [], 'the instance is terminated in EC2');

  const listed = (await inject({ url: '/tasks?action=delete' })).json().tasks.find((task: { task_id: string }) => task.task_id === expired.id);
  t.match(listed, { reason: 'expired', created_by: 'default' }, '/tasks shows the reason');
  const statuses = (await service.tasks.eventsSince(expired.id, 0)).filter((event) => event.type === 'status');
  t.same(statuses.map((event) => [event.data.status, event.data.reason]), [
    ['queued', 'expired'],
    ['running', 'expired'],
    ['succeeded', 'expired'],
  ], 'every status event of it says why');

  t.equal(await service.tasks.expireDue(), 0, 'a later sweep queues nothing more');
  t.equal((await deletesOf(service, ip)).length, 1, 'exactly one delete');
});

t.test('a restart between the expiry and its delete: exactly one delete, which runs after the restart', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const first = await startService(moto.url, { EC2_API_DB: db });
  const created = await launch(first, { ttl: 60 });
  const id = String(created.task_id);
  const ip = String(created.ip);
  await first.close();

  // Down while it expires; started paused, so the delete the expiry queues waits.
  const file = openDatabase(db);
  timePasses(file, id);
  file.close();
  const paused = await startService(moto.url, { EC2_API_DB: db, EC2_API_PAUSED: '1' });
  const queued = await deletesOf(paused, ip);
  t.equal(queued.length, 1, 'the start-up sweep queued the delete before taking requests');
  t.match(queued[0], { status: 'queued', reason: 'expired' });
  const patch = await injectOf(paused)({ method: 'PATCH', url: `/instances/${ip}`, payload: { ttl: 600 } });
  t.equal(patch.statusCode, 409, 'PATCH while the delete waits: 409');
  t.match(patch.json().error, new RegExp(`is being deleted \\(task ${queued[0]!.id}\\); cancel that task first`));
  await paused.close();

  const again = await startService(moto.url, { EC2_API_DB: db });
  t.teardown(() => again.close());
  const ended = await untilTerminal(again.tasks, queued[0]!.id);
  t.equal(ended.status, 'succeeded');
  t.same(await liveInstanceIds(moto.url, id), [], 'the instance is terminated');
  t.equal(await again.tasks.expireDue(), 0);
  t.same((await deletesOf(again, ip)).map((task) => task.id), [queued[0]!.id], 'exactly one delete, across both restarts');
});

t.test('a delete before the expiry ends it: nothing fires, and the create shows no expiry', async (t) => {
  const created = await launch(service, { ttl: 60 });
  const id = String(created.task_id);
  const ip = String(created.ip);
  const deleted = await inject({ method: 'DELETE', url: `/instances/${ip}?wait=true` });
  t.equal(deleted.statusCode, 200);
  t.equal(deleted.json().reason, null, 'a delete a client asked for has no reason');

  timePasses(service.db, id);
  t.equal(await service.tasks.expireDue(), 0, 'the due expiry queues nothing');
  t.same((await deletesOf(service, ip)).map((task) => task.id), [deleted.json().task_id], 'only the delete asked for');
  t.equal((await service.tasks.get(id))?.expires_at, null, 'the expiry is cleared');
});

t.test('EC2_API_DEFAULT_TTL: the lifetime of a create that gives none', async (t) => {
  const s = await startService(moto.url, { EC2_API_DEFAULT_TTL: '600', EC2_API_PAUSED: '1' });
  t.teardown(() => s.close());
  for (const [body, ttl] of [[{}, 600], [{ ttl: 120 }, 120]] as const) {
    const res = await injectOf(s)({ method: 'POST', url: '/create-async', payload: { ...VALID, ...body } });
    t.equal(res.statusCode, 202);
    const task = (await s.tasks.get(res.json().task_id))!;
    t.ok(Math.abs(seconds(task.expires_at) - seconds(task.created_at) - ttl) < 5, `expires ${ttl} s after acceptance`);
  }
});

t.test('EC2_API_MAX_INSTANCES: queued creates count; beyond, a 409 naming the cap and nothing queued', async (t) => {
  const s = await startService(moto.url, { EC2_API_MAX_INSTANCES: '2', EC2_API_PAUSED: '1' });
  t.teardown(() => s.close());
  const post = (key?: string) =>
    injectOf(s)({ method: 'POST', url: '/create-async', payload: VALID, headers: key ? { 'idempotency-key': key } : {} });
  // Three at once: the one in flight counts, so only two get in.
  const answers = await Promise.all([post('k1'), post(), post()]);
  t.same(answers.map((res) => res.statusCode).sort(), [202, 202, 409]);
  const refused = answers.find((res) => res.statusCode === 409)!.json();
  t.match(refused.error, /the instance cap is reached: 2 managed instances are live or queued to launch, and EC2_API_MAX_INSTANCES is 2/);
  t.equal((await s.tasks.list({ limit: 500 })).length, 2, 'nothing was queued for the refused one');
  for (const url of ['/create', '/instances']) {
    t.equal((await injectOf(s)({ method: 'POST', url, payload: VALID })).statusCode, 409, `${url} is refused too`);
  }
  t.equal((await s.tasks.list({ limit: 500 })).length, 2);
  const replay = await post('k1');
  t.equal(replay.statusCode, 202, 'a replay of an accepted create is not a new one: not refused');
  t.equal(replay.headers['idempotent-replayed'], 'true');
});

t.test('EC2_API_MAX_INSTANCES counts live instances; a delete makes room', async (t) => {
  const s = await startService(moto.url, { EC2_API_MAX_INSTANCES: '1' });
  t.teardown(() => s.close());
  const created = await launch(s);
  const refused = await injectOf(s)({ method: 'POST', url: '/create-async', payload: VALID });
  t.equal(refused.statusCode, 409, 'the live instance takes the one place');
  t.match(refused.json().error, /EC2_API_MAX_INSTANCES is 1/);
  t.equal((await injectOf(s)({ method: 'DELETE', url: `/instances/${String(created.ip)}?wait=true` })).statusCode, 200);
  const accepted = await injectOf(s)({ method: 'POST', url: '/create-async', payload: VALID });
  t.equal(accepted.statusCode, 202, 'terminated: a create is accepted again');
  await untilTerminal(s.tasks, accepted.json().task_id);
});
