// The five compatibility routes end to end: real HTTP handling, real queue
// and database, real ansible-playbook, against a real moto server.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import {
  VALID,
  eventually, eventuallyAsync,
  instances,
  launchUntagged,
  liveInstancesOfTask,
  startMoto,
  startService,
  tempDir,
  untilTerminal,
  type TestService,
} from './helpers/harness.js';
import { outputText } from '../src/ansible/output.js';
import { verifySha512Crypt } from '../src/login/sha512-crypt.js';

const moto = await startMoto();
const service: TestService = await startService(moto.url);
t.teardown(async () => {
  await service.close();
  await moto.stop();
});

const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
  service.app.inject({ method: 'POST', url, payload: payload as object, headers });
const get = (url: string) => service.app.inject({ method: 'GET', url });

const waitForStatus = (id: string) => untilTerminal(service.tasks, id);

const SECRET = 'correct horse battery staple';
let createdIp = '';

t.test('POST /create launches one tagged instance and answers with its IP', async (t) => {
  const res = await post('/create', { username: 'alice', password: SECRET });
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  t.match(body, { status: 'running', ip: /^\d+\.\d+\.\d+\.\d+$/, instance_id: /^i-/, task_id: /^[0-9a-f-]{36}$/ });
  t.notOk(JSON.stringify(body).includes(SECRET), 'the password is not echoed');
  createdIp = body.ip;

  const live = liveInstancesOfTask(moto.url, body.task_id);
  t.equal(live.length, 1, 'exactly one instance carries the task tag');
  const [instance] = live;
  t.equal(instance!.id, body.instance_id);
  t.equal(instance!.ip, body.ip);
  t.match(instance!.tags, { ManagedBy: 'ec2-api', TaskId: body.task_id, Name: /ec2-api/ });

  const userData = Buffer.from(instance!.user_data ?? '', 'base64').toString('utf8');
  t.match(userData, /^#cloud-config/m, 'user data is cloud-config');
  t.match(userData, /name: "?alice"?/, 'creates the login user');
  t.match(userData, /\$6\$/, 'with the SHA-512-crypt hash');
  t.match(userData, /ssh_pwauth: true/, 'and SSH password login');
  t.notOk(userData.includes(SECRET), 'the plaintext never reaches the instance');

  const status = (await get(`/status/${body.task_id}`)).json();
  t.match(status, { status: 'succeeded', action: 'create', ip: body.ip, instance_id: body.instance_id, instance_state: 'running', error: null });
  t.ok(status.started_at && status.finished_at, 'timestamps are set');
  t.match(status.progress, { step: Number, of: Number, name: String });
});

t.test('POST /create-async answers 202 at once; /status follows the task to success', async (t) => {
  const res = await post('/create-async', VALID);
  t.equal(res.statusCode, 202);
  const { task_id, message } = res.json();
  t.equal(message, 'create task queued');
  t.equal(res.headers.location, `/status/${task_id}`);

  const first = (await get(`/status/${task_id}`)).json();
  t.ok(['queued', 'running'].includes(first.status), `first seen ${first.status}`);
  t.equal(first.finished_at, null);

  const done = await waitForStatus(task_id);
  t.equal(done.status, 'succeeded', done.error ?? '');
  const status = (await get(`/status/${task_id}`)).json();
  t.match(status, { status: 'succeeded', ip: /^\d+\./, instance_id: /^i-/, instance_state: 'running' });
  t.equal(liveInstancesOfTask(moto.url, task_id).length, 1);
  // The task may end before its playbook run does (its result is reported early): the log is complete once the run is.
  const { log } = await eventuallyAsync(async () => {
    const output = (await service.tasks.output(task_id))!;
    return output.complete && output;
  }, 30_000, 'the run to end');
  t.ok(outputText(log).includes('PLAY RECAP'), 'the playbook output is kept as the task log');
});

t.test('GET /delete/<ip> terminates the managed instance; a second call finds nothing', async (t) => {
  const res = await get(`/delete/${createdIp}`);
  t.equal(res.statusCode, 200, res.body);
  t.match(res.json(), { ip: createdIp, status: 'terminated', instance_id: /^i-/, task_id: String });
  const instance = instances(moto.url).find((i) => i.id === res.json().instance_id);
  t.equal(instance?.state, 'terminated', 'EC2 says terminated');

  const again = await get(`/delete/${createdIp}`);
  t.equal(again.statusCode, 404);
  t.match(again.json(), { ip: createdIp, status: 'not_found', error: /no instance/ });
});

t.test('GET /delete-async/<ip> queues a termination that /status follows', async (t) => {
  const created = await post('/create', { username: 'bob', password: SECRET });
  t.equal(created.statusCode, 200, created.body);
  const res = await get(`/delete-async/${created.json().ip}`);
  t.equal(res.statusCode, 202);
  t.equal(res.json().message, 'delete task queued');
  t.equal(res.headers.location, `/status/${res.json().task_id}`);
  const done = await waitForStatus(res.json().task_id);
  t.match(done, { status: 'succeeded', action: 'delete', instance_state: 'terminated', instance_id: created.json().instance_id });
  t.equal(liveInstancesOfTask(moto.url, created.json().task_id).length, 0);
});

t.test('a delete-async of an unknown IP ends failed with instance_state not_found', async (t) => {
  const res = await get('/delete-async/203.0.113.77');
  t.equal(res.statusCode, 202);
  const done = await waitForStatus(res.json().task_id);
  t.match(done, { status: 'failed', instance_state: 'not_found', error: /203\.0\.113\.77/ });
});

t.test('an instance this service did not create is never touched', async (t) => {
  const foreign = launchUntagged(moto.url);
  t.ok(foreign.ip, 'moto gave the foreign instance a public IP');
  const res = await get(`/delete/${foreign.ip}`);
  t.equal(res.statusCode, 404);
  t.equal(res.json().status, 'not_found');
  const after = instances(moto.url).find((i) => i.id === foreign.id);
  t.equal(after?.state, 'running', 'still running');
});

t.test('a password that looks like an Ansible template is just a password', async (t) => {
  const marker = path.join(tempDir(), 'pwned');
  const password = `{{ lookup('pipe', 'touch ${marker}') }}`;
  const res = await post('/create', { username: 'eve', password });
  t.equal(res.statusCode, 200, res.body);
  t.notOk(fs.existsSync(marker), 'no template was evaluated: the file was not created');
  const [instance] = liveInstancesOfTask(moto.url, res.json().task_id);
  const userData = Buffer.from(instance!.user_data ?? '', 'base64').toString('utf8');
  const hash = /passwd: "?(\$6\$[^"\s]+)"?/.exec(userData)?.[1];
  t.ok(hash && verifySha512Crypt(password, hash), 'the instance got the hash of exactly that password');
});

t.test('the plaintext password is nowhere in the database files', async (t) => {
  const files = [service.config.dbPath, `${service.config.dbPath}-wal`, `${service.config.dbPath}-shm`].filter((f) => fs.existsSync(f));
  t.ok(files.length >= 1);
  for (const file of files) {
    const bytes = fs.readFileSync(file);
    t.equal(bytes.indexOf(SECRET), -1, `${file.split('/').pop()} holds no plaintext`);
  }
  // An ended create with no live Idempotency-Key keeps its username and no longer its hash (docs/task-lifecycle.md, "What is kept").
  const row = service.db
    .prepare(
      `SELECT params FROM tasks t WHERE action = 'create' AND status IN ('succeeded', 'failed')
       AND NOT EXISTS (SELECT 1 FROM idempotency_keys k WHERE k.task_id = t.id) LIMIT 1`,
    )
    .get() as { params: string } | undefined;
  t.ok(row, 'an ended create is there to look at');
  t.same(JSON.parse(row?.params ?? 'null'), { username: JSON.parse(row?.params ?? '{}').username }, 'only its username: the hash went when it ended');
  t.type(JSON.parse(row?.params ?? '{}').username, 'string');
  t.equal((fs.statSync(service.config.dbPath).mode & 0o777).toString(8), '600', 'the database is readable by its owner only');
});
