// Tokens that own their work (docs/API.md, "Ownership"): named tokens, a
// task's created_by, another token's tasks and instances answering 404 as
// unknown ones do, admins, idempotency keys per owner, and the token's name in
// the request log. Real runs on moto.
import pino from 'pino';
import t from 'tap';
import { REDACT } from '../src/app.js';
import { VALID, liveInstanceIds, startMoto, startService, untilTerminal, type TestService } from './helpers/harness.js';

const ALICE = 'a'.repeat(32);
const BOB = 'b'.repeat(32);
const ROOT = 'r'.repeat(32);
const BARE = 'd'.repeat(32);

const lines: string[] = [];
const logger = pino({ level: 'info', redact: { paths: REDACT, censor: '[redacted]' } }, { write: (line: string) => void lines.push(line) });

const moto = await startMoto();
const service: TestService = await startService(
  moto.url,
  { API_TOKENS: `alice=${ALICE},bob=${BOB},root=${ROOT},${BARE}`, EC2_API_ADMINS: 'root' },
  { logger },
);
t.teardown(async () => {
  await service.close();
  await moto.stop();
});

const as = (token: string) => (options: { method?: 'GET' | 'POST' | 'DELETE' | 'PATCH'; url: string; payload?: object; headers?: Record<string, string> }) =>
  service.app.inject({ ...options, headers: { ...options.headers, authorization: `Bearer ${token}` } });
const alice = as(ALICE);
const bob = as(BOB);
const root = as(ROOT);

const created = await alice({ method: 'POST', url: '/instances?wait=true', payload: { ...VALID, ttl: 3600 } });
const task = created.json();
const ip = String(task.ip);
const UNKNOWN_ID = '01a21c5a-6dbb-7575-a344-8105e40c2f30';
const UNKNOWN_IP = '203.0.113.7';

t.test("each task records the token's name; a bare token is named default", async (t) => {
  t.equal(created.statusCode, 201);
  t.equal(task.created_by, 'alice');
  t.equal((await alice({ url: `/status/${task.task_id}` })).json().created_by, 'alice', '/status shows it');
  const listed = (await alice({ url: '/tasks' })).json().tasks;
  t.same(listed.map((x: { created_by: string }) => x.created_by), ['alice'], '/tasks shows it, and alice sees her task only');
  const bare = await as(BARE)({ method: 'POST', url: '/create-async', payload: VALID });
  t.equal(bare.statusCode, 202);
  t.equal((await as(BARE)({ url: `/status/${bare.json().task_id}` })).json().created_by, 'default');
  await untilTerminal(service.tasks, bare.json().task_id);
});

t.test("another token's task answers as an unknown one: status, task, log, events, cancel", async (t) => {
  for (const path of ['/status/', '/tasks/', '/tasks/']) {
    const theirs = await bob({ url: `${path}${task.task_id}` });
    const unknown = await bob({ url: `${path}${UNKNOWN_ID}` });
    t.equal(theirs.statusCode, 404, `${path}<alice's>`);
    t.same(theirs.json(), unknown.json(), 'the same answer as an unknown id');
  }
  for (const suffix of ['/log', '/events']) {
    const theirs = await bob({ url: `/tasks/${task.task_id}${suffix}` });
    t.equal(theirs.statusCode, 404, suffix);
    t.same(theirs.json(), (await bob({ url: `/tasks/${UNKNOWN_ID}${suffix}` })).json());
  }
  const cancel = await bob({ method: 'POST', url: `/tasks/${task.task_id}/cancel` });
  t.equal(cancel.statusCode, 404);
  t.same(cancel.json(), (await bob({ method: 'POST', url: `/tasks/${UNKNOWN_ID}/cancel` })).json());
  t.same((await bob({ url: '/tasks' })).json().tasks, [], "bob's list holds none of alice's");
});

t.test("another token's instance: not listed; its delete ends not_found without a run, as an unknown IP's does; PATCH 404", async (t) => {
  const mine = (await alice({ url: '/instances' })).json().instances;
  t.match(mine, [{ public_ip: ip, created_by: 'alice', expires_at: task.expires_at }], 'alice sees hers, with owner and expiry');
  t.same((await bob({ url: '/instances' })).json().instances, [], 'bob sees none');

  const sameAnswer = (theirs: Record<string, unknown>, unknown: Record<string, unknown>, what: string) => {
    const neutral = (body: Record<string, unknown>, address: string) =>
      JSON.parse(JSON.stringify(body).replaceAll(address, 'IP').replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, 'ID').replace(/"20\d\d-[^"]+"/g, '"TIME"'));
    t.same(neutral(theirs, ip), neutral(unknown, UNKNOWN_IP), `${what}: the same answer as for an unknown IP`);
  };
  const sync = await bob({ url: `/delete/${ip}` });
  t.equal(sync.statusCode, 404, 'GET /delete/<alice\'s>');
  t.match(sync.json(), { status: 'not_found', error: `no instance managed by ec2-api has public IP ${ip}` });
  sameAnswer(sync.json(), (await bob({ url: `/delete/${UNKNOWN_IP}` })).json(), 'GET /delete');
  const rest = await bob({ method: 'DELETE', url: `/instances/${ip}?wait=true` });
  t.equal(rest.statusCode, 404, 'DELETE /instances/<alice\'s>');
  sameAnswer(rest.json(), (await bob({ method: 'DELETE', url: `/instances/${UNKNOWN_IP}?wait=true` })).json(), 'DELETE /instances');
  const queued = await bob({ url: `/delete-async/${ip}` });
  t.equal(queued.statusCode, 202, 'GET /delete-async: accepted, as for any IP');
  const ended = (await service.tasks.get(queued.json().task_id))!;
  t.match(ended, { status: 'failed', instance_state: 'not_found', created_by: 'bob', started_at: null }, 'ended not_found, never run');

  const patch = await bob({ method: 'PATCH', url: `/instances/${ip}`, payload: { ttl: 600 } });
  t.equal(patch.statusCode, 404);
  t.same(patch.json().error.replace(ip, 'IP'), (await bob({ method: 'PATCH', url: `/instances/${UNKNOWN_IP}`, payload: { ttl: 600 } })).json().error.replace(UNKNOWN_IP, 'IP'));

  t.same(await liveInstanceIds(moto.url, task.task_id), [task.instance_id], "alice's instance still runs");
  t.equal((await service.tasks.get(task.task_id))?.expires_at, task.expires_at, 'its expiry is unchanged');
  t.match((await alice({ url: '/instances' })).json().instances, [{ public_ip: ip, expires_at: task.expires_at }], "bob's deletes do not end it in the service's eyes");
});

t.test('an admin sees and acts on everything', async (t) => {
  const all = (await root({ url: '/tasks' })).json().tasks.map((x: { created_by: string }) => x.created_by);
  t.ok(all.includes('alice') && all.includes('default'), 'every owner');
  t.equal((await root({ url: `/status/${task.task_id}` })).statusCode, 200);
  t.match((await root({ url: '/instances' })).json().instances, [{ public_ip: ip, created_by: 'alice' }]);
  const patched = await root({ method: 'PATCH', url: `/instances/${ip}`, payload: { ttl: 7200 } });
  t.equal(patched.statusCode, 200);
  t.equal(patched.json().created_by, 'alice', "the instance stays alice's");
});

t.test('idempotency keys are per owner: one key from two tokens makes two tasks', async (t) => {
  const post = (who: ReturnType<typeof as>) =>
    who({ method: 'POST', url: '/create-async', payload: VALID, headers: { 'idempotency-key': 'deploy-42' } });
  const first = await post(alice);
  const other = await post(bob);
  t.equal(first.statusCode, 202);
  t.equal(other.statusCode, 202);
  t.not(other.json().task_id, first.json().task_id, "bob does not get alice's task");
  t.notOk(other.headers['idempotent-replayed'], 'nor is his a replay');
  const again = await post(bob);
  t.equal(again.json().task_id, other.json().task_id, "bob's own replay returns his task");
  t.equal(again.headers['idempotent-replayed'], 'true');
  t.equal((await service.tasks.get(other.json().task_id))?.created_by, 'bob');
  await Promise.all([first, other].map((res) => untilTerminal(service.tasks, res.json().task_id)));
});

t.test("/events: a token is sent its own tasks' events only", async (t) => {
  const own = await bob({ method: 'POST', url: '/create-async', payload: VALID });
  const ownId = String(own.json().task_id);
  await untilTerminal(service.tasks, ownId);
  await service.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = service.app.server.address() as { port: number };
  const abort = new AbortController();
  const res = await fetch(`http://127.0.0.1:${port}/events?after=0`, { headers: { authorization: `Bearer ${BOB}` }, signal: abort.signal });
  // The replay is in order: once bob's last task has ended in it, everything before was sent.
  let text = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
    if (new RegExp(`"task_id":"${ownId}","action":"create","status":"succeeded"`).test(text)) break;
  }
  abort.abort();
  const taskIds = new Set([...text.matchAll(/"task_id":"([0-9a-f-]{36})"/g)].map((m) => m[1]));
  t.ok(taskIds.has(ownId), "bob's own task's events are sent");
  t.notOk(taskIds.has(task.task_id), "alice's are not");
  const owners = await Promise.all([...taskIds].map(async (id) => (await service.tasks.get(id!))?.created_by));
  t.same(owners.filter((owner) => owner !== 'bob'), [], "every event sent is of one of bob's tasks");
});

t.test("every request log line names the request's token", async (t) => {
  const requestLines = lines.map((line) => JSON.parse(line) as { reqId?: string; token?: string; msg: string }).filter((line) => line.reqId);
  const byRequest = new Map<string, Set<string | undefined>>();
  for (const line of requestLines) byRequest.set(line.reqId!, (byRequest.get(line.reqId!) ?? new Set()).add(line.token));
  t.ok(requestLines.some((line) => line.msg === 'incoming request' && line.token === 'alice'), '"incoming request" names it');
  t.ok(requestLines.some((line) => line.msg === 'request completed' && line.token === 'bob'));
  t.ok(requestLines.some((line) => line.token === 'default'), 'a bare token: default');
  t.same([...byRequest].filter(([, tokens]) => tokens.size !== 1), [], 'each request: one token on every line');
  t.notOk(
    requestLines.some((line) => line.token === undefined),
    'no line of an authenticated request lacks it',
  );
  t.notOk(lines.some((line) => line.includes(ALICE) || line.includes(BOB)), 'no token is logged');
});

t.test('alice deletes her own instance', async (t) => {
  const deleted = await alice({ method: 'DELETE', url: `/instances/${ip}?wait=true` });
  t.equal(deleted.statusCode, 200);
  t.equal(deleted.json().created_by, 'alice');
  t.same(await liveInstanceIds(moto.url, task.task_id), []);
});
