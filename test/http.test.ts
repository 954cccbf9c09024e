// The HTTP contract (docs/API.md) through app.inject on the real service:
// real SQLite file, real better-queue, paused so that no playbook starts.
import { execFileSync } from 'node:child_process';
import type { LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import t from 'tap';
import { REDACT } from '../src/app.js';
import { projectRoot } from '../src/config.js';
import type { Db } from '../src/tasks/db.js';
import { startService, storedParams, VALID, type TestService } from './helpers/harness.js';

const ENDPOINT = 'http://127.0.0.1:9'; // never contacted: the service is paused
const PASSWORD = 'Plaintext-Secret-42'; // distinctive, so a leak anywhere is found
const BODY = { username: 'suitepad', password: PASSWORD };
const TOKEN = 'a'.repeat(32);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The assertions checkError needs, from any tap test. */
type T = Pick<typeof t, 'equal' | 'match' | 'type' | 'ok' | 'notOk' | 'notMatch' | 'fail'>;

const services: TestService[] = [];
t.teardown(async () => {
  for (const service of services) await service.close();
});

async function service(env: Record<string, string> = {}): Promise<TestService> {
  const started = await startService(ENDPOINT, { EC2_API_PAUSED: '1', ...env });
  services.push(started);
  return started;
}

/** Whether `hash` is the SHA-512-crypt of `password`, checked independently with `openssl passwd -6`. */
function opensslVerifies(password: string, hash: string): boolean {
  const match = /^\$6\$(?:rounds=(\d+)\$)?([./0-9A-Za-z]{1,16})\$/.exec(hash);
  if (!match) return false;
  const salt = match[1] ? `rounds=${match[1]}$${match[2]}` : match[2]!;
  return execFileSync('openssl', ['passwd', '-6', '-salt', salt, password], { encoding: 'utf8' }).trim() === hash;
}

const taskCount = (db: Db) => (db.prepare('select count(*) n from tasks').get() as { n: number }).n;

function post(s: TestService, url: string, body: unknown, headers: Record<string, string> = {}) {
  return s.app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const get = (s: TestService, url: string, headers: Record<string, string> = {}) => s.app.inject({ method: 'GET', url, headers });

/**
 * Checks what every 4xx/5xx must be: the expected status, a JSON body with an
 * `error` sentence, no password, no stack trace, no internal path. Returns the body.
 */
function checkError(t: T, res: LightMyRequestResponse, status: number, what: string): Record<string, unknown> {
  t.equal(res.statusCode, status, `${what}: status ${status}`);
  t.match(String(res.headers['content-type']), /^application\/json/, `${what}: JSON`);
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    t.fail(`${what}: body is not JSON: ${res.body}`);
  }
  t.type(body.error, 'string', `${what}: has an error string`);
  t.ok(String(body.error).length > 10, `${what}: the error is a sentence: ${String(body.error)}`);
  t.notOk(res.body.includes(PASSWORD), `${what}: the password is not echoed`);
  t.notMatch(res.body, /\bat .*(\/|\\)[\w.-]+\.(ts|js|mjs|cjs)(:\d+)?/, `${what}: no stack trace`);
  t.notOk(res.body.includes(projectRoot), `${what}: no internal path`);
  return body;
}

t.test('validation failures: 400 with error and field, and no task', async (t) => {
  const s = await service();
  const db = s.db;
  const cases: [what: string, body: unknown, field: string][] = [
    ['missing username', { password: PASSWORD }, 'username'],
    ['missing password', { username: 'suitepad' }, 'password'],
    ['unknown field', { ...BODY, admin: true }, 'admin'],
    ['empty object', {}, 'username'],
    ['uppercase username', { ...BODY, username: 'Suitepad' }, 'username'],
    ['username with a leading digit', { ...BODY, username: '1suitepad' }, 'username'],
    ['33-character username', { ...BODY, username: 'a'.repeat(33) }, 'username'],
    ['template in username', { ...BODY, username: '{{x}}' }, 'username'],
    ['username with a space', { ...BODY, username: 'a b' }, 'username'],
    ['username with a trailing newline', { ...BODY, username: 'suitepad\n' }, 'username'],
    ['username with a hyphen first', { ...BODY, username: '-suitepad' }, 'username'],
    ['empty username', { ...BODY, username: '' }, 'username'],
    ['numeric username', { ...BODY, username: 123 }, 'username'],
    ['system account root', { ...BODY, username: 'root' }, 'username'],
    ['system account ec2-user', { ...BODY, username: 'ec2-user' }, 'username'],
    ['system account ubuntu', { ...BODY, username: 'ubuntu' }, 'username'],
    ['system account nobody', { ...BODY, username: 'nobody' }, 'username'],
    ['7-character password', { ...BODY, password: 'Secret7' }, 'password'],
    ['129-character password', { ...BODY, password: PASSWORD + 'x'.repeat(129 - PASSWORD.length) }, 'password'],
    ['password with a control character', { ...BODY, password: `${PASSWORD}\u0007` }, 'password'],
    ['password with a newline', { ...BODY, password: `${PASSWORD}\n` }, 'password'],
    ['numeric password', { ...BODY, password: 12345678 }, 'password'],
    ['array body', [BODY], 'body'],
    ['string body', JSON.stringify(PASSWORD), 'body'],
    ['null body', 'null', 'body'],
  ];
  for (const route of ['/create', '/create-async']) {
    for (const [what, body, field] of cases) {
      const res = await post(s, route, body);
      const error = checkError(t, res, 400, `${route} ${what}`);
      t.equal(error.field, field, `${route} ${what}: field is ${field}`);
    }
  }
  const system = await post(s, '/create-async', { ...BODY, username: 'root' });
  t.match(JSON.parse(system.body).error, /system account/, 'a system account is named as such');
  const unknown = await post(s, '/create-async', { ...BODY, admin: true });
  t.match(JSON.parse(unknown.body).error, /unknown field "admin"/);

  // A password of exactly 8 and 128 printable characters is fine (no task is left running: paused).
  t.equal((await post(s, '/create-async', { username: 'edge_8', password: 'Secret78' })).statusCode, 202, '8 characters accepted');
  const long = await post(s, '/create-async', { username: 'edge-128', password: 'p'.repeat(128) });
  t.equal(long.statusCode, 202, '128 characters accepted');
  const longHash = storedParams(s.db, JSON.parse(long.body).task_id).password_hash!;
  t.ok(opensslVerifies('p'.repeat(128), longHash), 'a 128-byte password is hashed the way openssl hashes it');
  t.equal((await post(s, '/create-async', { username: '_' + 'a'.repeat(31), password: PASSWORD })).statusCode, 202, '32-character username accepted');
  const intl = await post(s, '/create-async', { username: 'intl', password: 'pässwörd-ünïcödé €' });
  t.equal(intl.statusCode, 202, 'non-ASCII printable password accepted');
  const intlHash = storedParams(s.db, JSON.parse(intl.body).task_id).password_hash!;
  t.ok(opensslVerifies('pässwörd-ünïcödé €', intlHash), 'hashed as UTF-8, as openssl does');
  t.equal(taskCount(db), 4, 'only the four valid requests stored a task');
});

t.test('body-level failures: bad JSON, wrong content type, too large', async (t) => {
  const s = await service();
  const db = s.db;
  for (const route of ['/create', '/create-async']) {
    const broken = await post(s, route, `{"username": "suitepad", "password": "${PASSWORD}"`);
    t.match(checkError(t, broken, 400, `${route} invalid JSON`).error, /not valid JSON/);

    for (const poison of ['__proto__', 'constructor']) {
      const res = await post(s, route, `{"username": "suitepad", "password": "${PASSWORD}", "${poison}": {"prototype": {"x": 1}}}`);
      checkError(t, res, 400, `${route} ${poison} in the body`);
    }

    const empty = await post(s, route, '');
    checkError(t, empty, 400, `${route} empty body`);

    const form = await s.app.inject({
      method: 'POST',
      url: route,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `username=suitepad&password=${PASSWORD}`,
    });
    t.match(checkError(t, form, 415, `${route} form body`).error, /application\/json/);

    const plain = await s.app.inject({
      method: 'POST',
      url: route,
      headers: { 'content-type': 'text/plain' },
      payload: JSON.stringify(BODY),
    });
    t.ok([400, 415].includes(plain.statusCode), `${route} text/plain is refused (${plain.statusCode})`);
    checkError(t, plain, plain.statusCode, `${route} text/plain`);

    const huge = await post(s, route, { username: 'suitepad', password: PASSWORD, padding: 'x'.repeat(20_000) });
    t.match(checkError(t, huge, 413, `${route} 20 kB body`).error, /too large/);
  }

  const badKey = await post(s, '/create-async', BODY, { 'idempotency-key': 'has space' });
  t.equal(checkError(t, badKey, 400, 'invalid Idempotency-Key').field, 'idempotency-key');
  const longKey = await post(s, '/create-async', BODY, { 'idempotency-key': 'k'.repeat(256) });
  t.equal(checkError(t, longKey, 400, '256-character Idempotency-Key').field, 'idempotency-key');

  t.equal(taskCount(db), 0, 'no task stored');
});

t.test('POST /create-async queues a task and keeps only the hash', async (t) => {
  const s = await service();
  const db = s.db;
  const health = async () => JSON.parse((await get(s, '/healthz')).body) as { queued: number };
  const queuedBefore = (await health()).queued;

  const res = await post(s, '/create-async', BODY);
  t.equal(res.statusCode, 202);
  t.match(String(res.headers['content-type']), /^application\/json/);
  const body = JSON.parse(res.body) as { task_id: string; message: string };
  t.match(body.task_id, UUID, 'task_id is a UUID');
  t.same(body, { task_id: body.task_id, message: 'create task queued' });
  t.equal(res.headers.location, `/status/${body.task_id}`);
  t.notOk(res.body.includes(PASSWORD));

  const row = db.prepare('select * from tasks where id = ?').get(body.task_id) as Record<string, unknown> | undefined;
  t.ok(row, 'the task is stored before the reply');
  t.equal(row?.status, 'queued');
  t.equal(row?.action, 'create');
  const params = JSON.parse(String(row?.params)) as { username: string; password_hash: string };
  t.equal(params.username, 'suitepad');
  t.match(params.password_hash, /^\$6\$/, 'a SHA-512-crypt hash');
  t.ok(opensslVerifies(PASSWORD, params.password_hash), 'the hash is of the given password (openssl agrees)');
  t.notOk(opensslVerifies('suitepad', params.password_hash), 'and not of another one');
  t.notOk(JSON.stringify(row).includes(PASSWORD), 'the plaintext is nowhere in the row');

  const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map((r) => r.name);
  t.notOk(tables.includes('queue_items'), 'the tasks table is the only queue');
  const everything = JSON.stringify(tables.map((name) => db.prepare(`select * from "${name}"`).all()));
  t.notOk(everything.includes(PASSWORD), 'the plaintext is nowhere in the database');
  t.equal((await health()).queued, queuedBefore + 1, '/healthz counts the queued task');
});

t.test('POST /create waits and answers 504 while the task is still queued', async (t) => {
  const s = await service({ EC2_API_SYNC_WAIT: '1' });
  const [create, del] = await Promise.all([post(s, '/create', BODY), get(s, '/delete/54.1.2.3')]);
  const createBody = JSON.parse(create.body) as Record<string, unknown>;
  t.equal(create.statusCode, 504);
  t.equal(createBody.ip, null);
  t.ok(['queued', 'running'].includes(String(createBody.status)), `status says the task goes on (${String(createBody.status)})`);
  t.match(createBody.task_id, UUID);
  t.match(createBody.error, new RegExp(`/status/${String(createBody.task_id)}`), 'the error says where to follow the task');
  t.notOk(create.body.includes(PASSWORD));
  t.equal(del.statusCode, 504);
  const delBody = JSON.parse(del.body) as Record<string, unknown>;
  t.equal(delBody.ip, '54.1.2.3');
  t.ok(['queued', 'running'].includes(String(delBody.status)));
  t.match(delBody.task_id, UUID);
  t.equal((await s.tasks.get(String(createBody.task_id)))?.status, 'queued', 'the task goes on');
});

t.test('GET /status', async (t) => {
  const s = await service();
  checkError(t, await get(s, '/status/not-a-uuid'), 400, 'invalid id');
  t.equal(JSON.parse((await get(s, '/status/not-a-uuid')).body).field, 'id');
  checkError(t, await get(s, `/status/${'1'.repeat(36)}`), 400, '36 characters that are not a UUID');

  const unknown = await get(s, '/status/6f1c2a4e-9b3d-4c1e-8a2b-1d2e3f4a5b6c');
  checkError(t, unknown, 404, 'unknown id');
  t.same(JSON.parse(unknown.body), { error: 'task not found' });

  const created = JSON.parse((await post(s, '/create-async', BODY)).body) as { task_id: string };
  const res = await get(s, `/status/${created.task_id}`);
  t.equal(res.statusCode, 200);
  const status = JSON.parse(res.body) as Record<string, unknown>;
  t.has(status, {
    task_id: created.task_id,
    action: 'create',
    status: 'queued',
    ip: null,
    instance_id: null,
    instance_state: null,
    error: null,
    started_at: null,
    finished_at: null,
    progress: null,
  });
  for (const field of ['task_id', 'action', 'status', 'ip', 'instance_id', 'instance_state', 'error', 'created_at', 'started_at', 'finished_at', 'progress']) {
    t.ok(field in status, `${field} is present`);
  }
  t.match(status.created_at, ISO);
  t.notOk(res.body.includes('password_hash'), 'the hash is not shown');
  t.notOk(res.body.includes('$6$'));

  const upper = await get(s, `/status/${created.task_id.toUpperCase()}`);
  t.equal(upper.statusCode, 200, 'an upper-case id finds the same task');
  t.equal(JSON.parse(upper.body).task_id, created.task_id);

  const del = JSON.parse((await get(s, '/delete-async/54.1.2.3')).body) as { task_id: string };
  t.has(JSON.parse((await get(s, `/status/${del.task_id}`)).body), { action: 'delete', status: 'queued', ip: '54.1.2.3', instance_id: null });
});

t.test('GET /delete-async/<ip>', async (t) => {
  const s = await service();
  const db = s.db;
  const res = await get(s, '/delete-async/54.1.2.3');
  t.equal(res.statusCode, 202);
  const body = JSON.parse(res.body) as { task_id: string; message: string };
  t.same(body, { task_id: body.task_id, message: 'delete task queued' });
  t.match(body.task_id, UUID);
  t.equal(res.headers.location, `/status/${body.task_id}`);
  const row = db.prepare('select action, status, ip, params from tasks where id = ?').get(body.task_id);
  t.same(row, { action: 'delete', status: 'queued', ip: '54.1.2.3', params: JSON.stringify({ ip: '54.1.2.3' }) });

  for (const ip of ['0.0.0.0', '255.255.255.255', '10.0.0.1']) {
    t.equal((await get(s, `/delete-async/${ip}`)).statusCode, 202, `${ip} is a valid address`);
  }
  const before = taskCount(db);
  for (const bad of ['1.2.3', '256.1.1.1', '01.2.3.4', '1.2.3.4 ', 'abc', '::1', '1.2.3.4.5', '-1.2.3.4', '1.2.3.4/32']) {
    for (const route of ['/delete-async', '/delete']) {
      const res = await get(s, `${route}/${encodeURIComponent(bad)}`);
      const error = checkError(t, res, 400, `${route}/${JSON.stringify(bad)}`);
      t.equal(error.field, 'ip', `${route}/${JSON.stringify(bad)}: field ip`);
    }
  }
  t.equal(taskCount(db), before, 'no task stored for an invalid ip');
});

t.test('Idempotency-Key', async (t) => {
  const s = await service();
  const db = s.db;
  const key = { 'idempotency-key': 'order-2024-0001' };
  const first = await post(s, '/create-async', BODY, key);
  t.equal(first.statusCode, 202);
  t.notOk(first.headers['idempotent-replayed'], 'the first request is not a replay');
  const id = (JSON.parse(first.body) as { task_id: string }).task_id;

  const again = await post(s, '/create-async', BODY, key);
  t.equal(again.statusCode, 202);
  t.same(JSON.parse(again.body), { task_id: id, message: 'create task queued' }, 'same task');
  t.equal(again.headers['idempotent-replayed'], 'true');
  t.equal(again.headers.location, `/status/${id}`);
  t.equal(taskCount(db), 1, 'one task row');

  const otherUser = await post(s, '/create-async', { ...BODY, username: 'someone_else' }, key);
  t.equal(checkError(t, otherUser, 409, 'same key, other username').field, 'idempotency-key');
  const otherPassword = await post(s, '/create-async', { ...BODY, password: 'Another-Secret-99' }, key);
  checkError(t, otherPassword, 409, 'same key, other password');
  t.notOk(otherPassword.body.includes('Another-Secret-99'));
  t.equal(taskCount(db), 1, 'a conflict stores no task');

  const otherKey = await post(s, '/create-async', BODY, { 'idempotency-key': 'order-2024-0002' });
  t.equal(otherKey.statusCode, 202);
  t.not(JSON.parse(otherKey.body).task_id, id, 'another key is another task');
  t.equal(taskCount(db), 2);
  t.notOk(JSON.stringify(db.prepare('select * from idempotency_keys').all()).includes(PASSWORD), 'the key record holds no password');
});

t.test('unknown route', async (t) => {
  const s = await service();
  checkError(t, await get(s, '/nope'), 404, 'GET /nope');
  checkError(t, await post(s, '/status/6f1c2a4e-9b3d-4c1e-8a2b-1d2e3f4a5b6c', BODY), 404, 'POST to a GET route');
  checkError(t, await post(s, '/create-async/extra', BODY), 404, 'POST /create-async/extra');
  t.equal(taskCount(s.db), 0);
});

t.test('/healthz', async (t) => {
  const s = await service();
  const res = await get(s, '/healthz');
  t.equal(res.statusCode, 200);
  const health = JSON.parse(res.body) as Record<string, unknown>;
  t.has(health, {
    status: 'ok',
    cloud: { kind: 'endpoint', endpoint: ENDPOINT, region: 'us-east-1' },
    accepting: true,
    paused: true,
    queued: 0,
    running_playbooks: 0,
  });
  t.match((health.cloud as { description: string }).description, ENDPOINT);
});

t.test('bearer tokens', async (t) => {
  const s = await service({ API_TOKENS: TOKEN });
  const db = s.db;

  const none = await post(s, '/create-async', BODY);
  checkError(t, none, 401, 'no Authorization');
  t.equal(none.headers['www-authenticate'], 'Bearer realm="ec2-api"');
  const wrong = await post(s, '/create-async', BODY, { authorization: `Bearer ${'b'.repeat(32)}` });
  checkError(t, wrong, 401, 'wrong token');
  t.ok(wrong.headers['www-authenticate']);
  checkError(t, await post(s, '/create-async', BODY, { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` }), 401, 'Basic auth');
  checkError(t, await post(s, '/create-async', BODY, { authorization: `Bearer ${TOKEN}x` }), 401, 'token with a suffix');
  checkError(t, await get(s, '/status/6f1c2a4e-9b3d-4c1e-8a2b-1d2e3f4a5b6c'), 401, 'GET /status without a token');
  checkError(t, await get(s, '/delete-async/54.1.2.3'), 401, 'GET /delete-async without a token');
  t.equal(taskCount(db), 0, 'refused requests store no task');

  const auth = { authorization: `Bearer ${TOKEN}` };
  const ok = await post(s, '/create-async', BODY, auth);
  t.equal(ok.statusCode, 202, 'the right token works');
  const id = (JSON.parse(ok.body) as { task_id: string }).task_id;
  t.equal((await get(s, `/status/${id}`, auth)).statusCode, 200);
  t.equal((await get(s, `/status/${id}`, { authorization: `bearer ${TOKEN}` })).statusCode, 200, 'the scheme is case-insensitive');
  t.equal(taskCount(db), 1);

  const health = await get(s, '/healthz');
  t.equal(health.statusCode, 200, '/healthz needs no token');
  t.equal((await get(s, '/healthz?verbose=1')).statusCode, 200, 'nor with a query string');
});

t.test('backpressure: EC2_API_MAX_QUEUED', async (t) => {
  const s = await service({ EC2_API_MAX_QUEUED: '3' });
  const db = s.db;
  for (let i = 1; i <= 3; i++) {
    t.equal((await post(s, '/create-async', { ...VALID, username: `user${i}` })).statusCode, 202, `task ${i} accepted`);
  }
  const full = await post(s, '/create-async', { ...BODY, username: 'user4' });
  checkError(t, full, 503, '4th create');
  t.match(full.headers['retry-after'], /^\d+$/, 'Retry-After says when to come back');
  checkError(t, await get(s, '/delete-async/54.1.2.3'), 503, 'a delete too');
  t.equal(taskCount(db), 3, 'no 4th row');
});

t.test('after shutdown new tasks are refused with 503', async (t) => {
  const s = await service();
  const db = s.db;
  t.equal((await post(s, '/create-async', BODY)).statusCode, 202);
  // The first step of the app's stop, as app.close() runs it.
  s.tasks.refuseNewTasks();
  const create = await post(s, '/create-async', BODY);
  checkError(t, create, 503, 'create after close');
  t.match(create.headers['retry-after'], /^\d+$/);
  checkError(t, await get(s, '/delete-async/54.1.2.3'), 503, 'delete after close');
  t.equal(taskCount(db), 1, 'nothing stored after close');
  t.equal(JSON.parse((await get(s, '/healthz')).body).accepting, false, '/healthz says it is not accepting');
});

t.test('an internal failure is a JSON 500 without details, and stores nothing', async (t) => {
  const s = await service();
  const db = s.db;
  // A real SQLite failure on insert (full disk, I/O error) whose message carries a path.
  db.exec(`CREATE TRIGGER boom BEFORE INSERT ON tasks BEGIN SELECT RAISE(ABORT, 'disk I/O error in ${projectRoot}/src/tasks/store.ts:42'); END`);
  const res = await post(s, '/create-async', BODY);
  const body = checkError(t, res, 500, 'insert fails');
  t.same(body, { error: 'internal error; the service log has the details' });
  db.exec('DROP TRIGGER boom');
  t.equal(taskCount(db), 0);
  t.equal((await post(s, '/create-async', BODY)).statusCode, 202, 'the service goes on once the failure is gone');
});

t.test('the password never reaches the log', async (t) => {
  const lines: string[] = [];
  const logger = pino({ level: 'trace', redact: { paths: REDACT, censor: '[redacted]' } }, { write: (line: string) => void lines.push(line) });
  const s = await startService(ENDPOINT, { EC2_API_PAUSED: '1' }, { logger });
  services.push(s);
  const { app } = s;
  const send = (payload: string, headers: Record<string, string> = {}) =>
    app.inject({ method: 'POST', url: '/create-async', headers: { 'content-type': 'application/json', ...headers }, payload });

  t.equal((await send(JSON.stringify(BODY))).statusCode, 202);
  t.equal((await send(JSON.stringify(BODY), { 'idempotency-key': 'log-key' })).statusCode, 202);
  t.equal((await send(JSON.stringify({ ...BODY, password: 'Another-Secret-99' }), { 'idempotency-key': 'log-key' })).statusCode, 409);
  t.equal((await send(JSON.stringify({ ...BODY, password: `${PASSWORD}\u0007` }))).statusCode, 400);
  t.equal((await send(JSON.stringify({ ...BODY, username: 'root' }))).statusCode, 400);
  t.equal((await send(`{"password": "${PASSWORD}" "username": "x"}`)).statusCode, 400, 'invalid JSON whose parser message quotes the input');
  t.equal((await send(`{"username": "suitepad", "password": "${PASSWORD}", "__proto__": {}}`)).statusCode, 400);
  s.db.exec(`CREATE TRIGGER boom BEFORE INSERT ON tasks BEGIN SELECT RAISE(ABORT, 'boom'); END`);
  t.equal((await send(JSON.stringify(BODY))).statusCode, 500);
  s.db.exec('DROP TRIGGER boom');

  const log = lines.join('');
  t.ok(lines.length >= 8, `requests were logged (${lines.length} lines)`);
  t.match(log, /request failed/, 'the 500 was logged');
  t.notOk(log.includes(PASSWORD), 'the password is not in the log');
  t.notOk(log.includes('Another-Secret-99'), 'nor the conflicting one');
});
