#!/usr/bin/env node
// Makes test/fixtures/schema-v<N>.db: a database as each released schema
// version left it, for test/upgrades.test.ts. Each schema is built by that
// release's own migrations, read from git history (src/tasks/db.ts at the
// commit named below), and filled with the rows that release wrote: tasks
// queued, running (interrupted by a stop), succeeded, failed and canceled,
// their events, idempotency keys, better-queue's rows (schema 1 and 2) and a
// dead owner. Run from the repository: node scripts/make-schema-fixtures.mjs
// The files are committed; run it again only to add a version.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The last commit of each schema version's db.ts. */
const RELEASES = [
  { version: 1, commit: 'b8dec7d' },
  { version: 2, commit: 'b9dafcc' },
  { version: 3, commit: '63e302a' },
];

/** `openssl passwd -6 -salt fixtures suitepad`: the stored form of a create's password. */
const HASH = '$6$fixtures$anuzMEhIo7rJ6aUwrHFv6NHTBr0vnmY6Wsj5W6sMzxTGp0u/IhhKyIGM2jk6tyVtdHTwvpiveM3SI2w1E6ZEU1';

/** MIGRATIONS from db.ts at that commit: an array of template literals without substitutions. */
function migrationsAt(commit) {
  const source = execFileSync('git', ['show', `${commit}:src/tasks/db.ts`], { cwd: root, encoding: 'utf8' });
  const literal = /const MIGRATIONS: string\[\] = (\[[\s\S]*?\n\]);/.exec(source)?.[1];
  if (!literal || literal.includes('${')) throw new Error(`cannot read MIGRATIONS at ${commit}`);
  return new Function(`return ${literal};`)();
}

const id = (n) => `01a1f000-0000-7000-8000-${String(n).padStart(12, '0')}`;
const at = (minute) => `2026-11-27T09:${String(minute).padStart(2, '0')}:00.000Z`;
const LOG = 'PLAY [Launch one instance per task] ****\n\nTASK [Launch] ****\nok: [localhost]\n\nPLAY RECAP ****\nlocalhost : ok=4 changed=1\n';

/** Every task of the fixtures (test/upgrades.test.ts says what this release must show for each). */
const TASKS = [
  { n: 1, action: 'create', status: 'succeeded', params: { username: 'suitepad', password_hash: HASH }, ip: '54.214.1.10', instance_id: 'i-0fixture00000001', instance_state: 'running', attempts: 1, log: LOG },
  { n: 2, action: 'delete', status: 'succeeded', params: { ip: '54.214.1.10' }, ip: '54.214.1.10', instance_id: 'i-0fixture00000001', instance_state: 'terminated', attempts: 1, log: 'PLAY RECAP ****\n' },
  { n: 3, action: 'create', status: 'failed', params: { username: 'alice', password_hash: HASH }, error: 'InsufficientInstanceCapacity: no t2.micro capacity in us-east-1a', attempts: 1, log: 'fatal: [localhost]: FAILED!\n' },
  { n: 4, action: 'create', status: 'running', params: { username: 'bob', password_hash: HASH }, attempts: 1, runner_pid: 2_000_000, runner_start: '1', batch: 'batch-4' },
  { n: 5, action: 'create', status: 'queued', params: { username: 'carol', password_hash: HASH } },
  { n: 6, action: 'delete', status: 'queued', params: { ip: '54.214.1.20' }, ip: '54.214.1.20' },
  // From schema 2: cancels.
  { n: 7, since: 2, action: 'create', status: 'canceled', params: { username: 'dave', password_hash: HASH }, error: 'canceled', cancel_requested: 1 },
  { n: 8, since: 2, action: 'delete', status: 'running', params: { ip: '54.214.1.30' }, ip: '54.214.1.30', attempts: 1, cancel_requested: 1, runner_pid: 2_000_001, runner_start: '1', batch: 'batch-8' },
];

function fill(db, version) {
  const tasks = TASKS.filter((task) => (task.since ?? 1) <= version);
  const columns = ['id', 'action', 'status', 'params', 'ip', 'instance_id', 'instance_state', 'error', 'log', 'attempts', 'runner_pid', 'runner_start', 'created_at', 'started_at', 'finished_at'];
  if (version >= 2) columns.push('cancel_requested');
  if (version >= 3) columns.push('batch_id', 'log_tail', 'log_size');
  const insert = db.prepare(`INSERT INTO tasks (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')})`);
  for (const task of tasks) {
    const ended = ['succeeded', 'failed', 'canceled'].includes(task.status);
    const ran = task.attempts > 0;
    const log = task.log ?? '';
    insert.run({
      id: id(task.n),
      action: task.action,
      status: task.status,
      params: JSON.stringify(task.params),
      ip: task.ip ?? null,
      instance_id: task.instance_id ?? null,
      instance_state: task.instance_state ?? null,
      error: task.error ?? null,
      log,
      attempts: task.attempts ?? 0,
      runner_pid: task.runner_pid ?? null,
      runner_start: task.runner_start ?? null,
      created_at: at(task.n),
      started_at: ran ? at(task.n + 10) : null,
      finished_at: ended ? at(task.n + 20) : null,
      cancel_requested: task.cancel_requested ?? 0,
      batch_id: task.status === 'running' ? task.batch : null,
      // Schema 3 keeps a log's beginning and end; the first task's log had a middle left out.
      log_tail: task.n === 1 ? 'localhost : ok=4 changed=1 (tail)\n' : '',
      log_size: task.n === 1 ? log.length + 5000 : log.length,
    });
  }

  const key = db.prepare('INSERT INTO idempotency_keys (key, request_hash, task_id, expires_at) VALUES (?, ?, ?, ?)');
  // As every release so far hashed a create's request: its action and username.
  const requestHash = (username) => createHash('sha256').update(JSON.stringify({ action: 'create', username })).digest('hex');
  key.run('fixture-key-1', requestHash('suitepad'), id(1), '2099-01-01T00:00:00.000Z');
  key.run('fixture-key-expired', requestHash('alice'), id(3), '2026-11-28T09:03:00.000Z');

  if (version <= 2) {
    // better-queue's own rows: a locked batch for the running tasks, a waiting row per queued one.
    const item = db.prepare('INSERT INTO queue_items (task_id, payload, lock_id) VALUES (?, ?, ?)');
    for (const task of tasks.filter((t) => t.status === 'running' || t.status === 'queued')) {
      item.run(id(task.n), JSON.stringify({ id: id(task.n) }), task.status === 'running' ? task.batch : null);
    }
  }
  if (version >= 2) {
    const event = db.prepare('INSERT INTO task_events (task_id, at, type, data) VALUES (?, ?, ?, ?)');
    event.run(id(1), at(1), 'status', JSON.stringify({ status: 'queued' }));
    event.run(id(1), at(11), 'status', JSON.stringify({ status: 'running' }));
    event.run(id(1), at(12), 'step_start', JSON.stringify({ step: 1, of: 4, name: 'Launch one instance per task' }));
    event.run(id(1), at(13), 'step_end', JSON.stringify({ step: 1, of: 4, name: 'Launch one instance per task', ok: true }));
    event.run(id(1), at(21), 'status', JSON.stringify({ status: 'succeeded', ip: '54.214.1.10' }));
    event.run(id(7), at(27), 'status', JSON.stringify({ status: 'canceled', error: 'canceled' }));
  }
  // The release that wrote it was stopped by a crash: its owner row names a process long gone.
  db.prepare('INSERT INTO service_owner (id, pid, start_time) VALUES (1, ?, ?)').run(2_000_002, '1');
}

for (const { version, commit } of RELEASES) {
  const migrations = migrationsAt(commit);
  if (migrations.length !== version) throw new Error(`${commit} has ${migrations.length} migrations, not ${version}`);
  const file = path.join(root, 'test', 'fixtures', `schema-v${version}.db`);
  fs.rmSync(file, { force: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  // As that release's migrate() did: one transaction per migration, user_version after each.
  migrations.forEach((sql, i) => db.transaction(() => {
    db.exec(sql);
    db.pragma(`user_version = ${i + 1}`);
  })());
  db.transaction(() => fill(db, version))();
  // Closing folds the WAL into the file, as a clean stop did: one file, still in WAL mode.
  db.close();
  fs.chmodSync(file, 0o600);
  console.log(`${path.relative(root, file)}: schema ${version} (from ${commit}), ${fs.statSync(file).size} bytes`);
}
