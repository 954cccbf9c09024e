// A database left by any earlier release opens in this one, with every task
// where its user left it: test/fixtures/schema-v<N>.db were made by each
// released schema's own migrations (scripts/make-schema-fixtures.mjs). The
// service opens a copy, as an operator upgrading would, paused so that
// nothing runs; what it shows through its API is checked. A database from a
// newer release is refused, with a sentence, and left as it was.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import t from 'tap';
import { projectRoot } from '../src/config.js';
import { SCHEMA_VERSION } from '../src/tasks/db.js';
import { startService, tempDir } from './helpers/harness.js';

const FIXTURES = path.join(projectRoot, 'test', 'fixtures');
const id = (n: number) => `01a1f000-0000-7000-8000-${String(n).padStart(12, '0')}`;
/** Nothing listens there: paused, the service never calls EC2. */
const NO_EC2 = 'http://127.0.0.1:9';

/**
 * Each fixture task, as this release must show it: an interrupted run is queued again, a running delete with a
 * cancel an older release recorded too (a running delete cannot be canceled: its TerminateInstances may have gone out).
 */
const EXPECTED: { n: number; since?: number; view: Record<string, unknown> }[] = [
  { n: 1, view: { action: 'create', status: 'succeeded', ip: '54.214.1.10', instance_id: 'i-0fixture00000001', instance_state: 'running', attempts: 1 } },
  { n: 2, view: { action: 'delete', status: 'succeeded', ip: '54.214.1.10', instance_state: 'terminated' } },
  { n: 3, view: { action: 'create', status: 'failed', error: 'InsufficientInstanceCapacity: no t2.micro capacity in us-east-1a' } },
  { n: 4, view: { action: 'create', status: 'queued', attempts: 1 } },
  { n: 5, view: { action: 'create', status: 'queued', attempts: 0 } },
  { n: 6, view: { action: 'delete', status: 'queued', ip: '54.214.1.20' } },
  { n: 7, since: 2, view: { action: 'create', status: 'canceled', error: 'canceled' } },
  { n: 8, since: 2, view: { action: 'delete', status: 'queued', ip: '54.214.1.30' } },
];

const fixtures = fs.readdirSync(FIXTURES).filter((name) => /^schema-v\d+\.db$/.test(name));

t.test('there is a fixture for every earlier schema version', async (t) => {
  const versions = fixtures.map((name) => Number(/\d+/.exec(name)![0])).sort((a, b) => a - b);
  t.same(versions, [1, 2, 3], 'schema 1, 2 and 3: the releases before this one');
});

/** A private copy of a fixture, as an operator would restore it (git keeps no 0600). */
function copyOf(name: string): string {
  const file = path.join(tempDir(), 'ec2-api.db');
  fs.copyFileSync(path.join(FIXTURES, name), file);
  fs.chmodSync(file, 0o600);
  return file;
}

for (const name of fixtures) {
  const version = Number(/\d+/.exec(name)![0]);
  t.test(`a database of schema ${version} opens with every task in it`, async (t) => {
    const file = copyOf(name);
    const service = await startService(NO_EC2, { EC2_API_DB: file, EC2_API_PAUSED: '1' });
    t.teardown(() => service.close());
    const { app } = service;
    const expected = EXPECTED.filter((task) => (task.since ?? 1) <= version);

    for (const task of expected) {
      const response = await app.inject({ url: `/status/${id(task.n)}` });
      t.equal(response.statusCode, 200, `task ${task.n} is found`);
      t.match(response.json(), { task_id: id(task.n), ...task.view }, `task ${task.n}: ${JSON.stringify(task.view)}`);
    }
    const listed = (await app.inject({ url: '/tasks?limit=100' })).json() as { tasks: { task_id: string }[] };
    t.same(listed.tasks.map((task) => task.task_id).sort(), expected.map((task) => id(task.n)).sort(), 'GET /tasks lists exactly these');
    t.equal((await service.tasks.stats()).queued, expected.filter((task) => task.view.status === 'queued').length, 'the queued ones wait to run');

    const log = await app.inject({ url: `/tasks/${id(1)}/log` });
    t.match(log.body, /PLAY RECAP/, 'a task keeps its playbook output');

    // The key is remembered: another request under it is refused, and makes no task.
    const reuse = await app.inject({
      method: 'POST',
      url: '/create-async',
      headers: { 'idempotency-key': 'fixture-key-1' },
      payload: { username: 'someone', password: 'another-password' },
    });
    t.equal(reuse.statusCode, 409, 'an idempotency key of the old release still holds');
    t.equal((await service.tasks.list({ limit: 100 })).length, expected.length, 'no task was added');

    if (version >= 2) t.ok((await service.tasks.eventsSince(id(1), 0)).some((event) => event.type === 'step_start'), 'step events are kept');
    t.equal(service.db.pragma('user_version', { simple: true }), SCHEMA_VERSION, "brought up to this release's schema");
  });
}

t.test('a database from a newer release is refused with a sentence, and left as it was', async (t) => {
  const file = copyOf(fixtures.at(-1)!);
  const newer = new Database(file);
  newer.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  newer.close();
  const before = fs.readFileSync(file);

  const result = await execa(process.execPath, [path.join(projectRoot, 'dist', 'server.js')], {
    cwd: projectRoot,
    env: { ...process.env, EC2_API_DB: file, AWS_ENDPOINT_URL: NO_EC2, PORT: '0', LOG_LEVEL: 'warn' },
    reject: false,
    timeout: 30_000,
  });
  t.equal(result.exitCode, 1);
  t.match(result.stderr, `the database has schema version ${SCHEMA_VERSION + 1}, newer than this ec2-api (${SCHEMA_VERSION}); run a newer release`);
  t.ok(fs.readFileSync(file).equals(before), 'the file is not changed');
});
