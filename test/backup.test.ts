// `ec2-api-server backup FILE` while the service runs (as its unit starts
// it), then the restore of docs/service.md: stop, copy the backup into a
// fresh state directory, start; every task accepted before the backup is
// there, and the ones it caught in flight run to the end. Mistakes get a
// sentence and change nothing.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { projectRoot } from '../src/config.js';
import { eventuallyAsync, instances, liveInstancesOfTask, startMoto, tempDir, VALID } from './helpers/harness.js';
import { asServiceUser, ownByServiceUser, prepare, startUnit, unitCommand, unitDirs, type UnitDirs } from './helpers/systemd-unit.js';

const moto = await startMoto();
t.teardown(() => moto.stop());

const TOKEN = 'backup-token-0123456789abcdef';
const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const CREDENTIALS = { 'api-tokens': TOKEN, 'aws-credentials': '[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n' };

function freshHost(): UnitDirs {
  const dirs = unitDirs();
  prepare(dirs, CREDENTIALS);
  return dirs;
}
const databaseOf = (dirs: UnitDirs) => path.join(dirs.state, 'ec2-api', 'ec2-api.db');

/** `sudo -u ec2-api EC2_API_DB=… ec2-api-server backup FILE`, as docs/service.md runs it. */
function backup(database: string, file: string) {
  const [command, ...args] = asServiceUser([process.execPath, path.join(projectRoot, 'dist', 'server.js'), 'backup', file]);
  return execa(command!, args, { env: { PATH: process.env.PATH, EC2_API_DB: database }, reject: false, timeout: 60_000 });
}

async function call(url: string, method: string, route: string, body?: object) {
  const response = await fetch(`${url}${route}`, { method, headers, body: body && JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, string> };
}

t.test('a backup taken while the service runs restores with every task', async (t) => {
  const original = freshHost();
  const first = await startUnit(unitCommand(original, { AWS_ENDPOINT_URL: moto.url }));
  t.teardown(() => first.child.kill('SIGKILL'));

  const done = await call(first.url, 'POST', '/create', VALID);
  t.equal(done.body.status, 'running', 'one launch done before the backup');
  const inFlight = await call(first.url, 'POST', '/create-async', VALID);
  const deleting = await call(first.url, 'GET', `/delete-async/${done.body.ip}`);
  t.equal(inFlight.status, 202);
  t.equal(deleting.status, 202);
  const ids = [done.body.task_id!, inFlight.body.task_id!, deleting.body.task_id!];

  const backups = tempDir('ec2-api-backups-');
  ownByServiceUser(backups);
  const file = path.join(backups, 'ec2-api-backup.db');
  const taken = await backup(databaseOf(original), file);
  t.equal(taken.exitCode, 0, taken.stderr);
  t.match(taken.stdout, /^backed up .*ec2-api\.db to .*ec2-api-backup\.db: \d+ tasks, schema version \d+, \d+ bytes$/m);
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'the copy is readable by its owner only');
  t.same(fs.readdirSync(backups), ['ec2-api-backup.db'], 'one file, nothing beside it (no -wal, no -shm)');

  first.child.kill('SIGTERM');
  t.equal(await first.exited, 0, 'stop', { output: first.stdout().slice(-4000) });

  // Restore: the copy becomes the database of a fresh state directory, then start.
  const restored = freshHost();
  fs.copyFileSync(file, databaseOf(restored));
  fs.chmodSync(databaseOf(restored), 0o600);
  ownByServiceUser(databaseOf(restored));
  const second = await startUnit(unitCommand(restored, { AWS_ENDPOINT_URL: moto.url }));
  t.teardown(() => second.child.kill('SIGKILL'));

  const listed = await fetch(`${second.url}/tasks?limit=100`, { headers }).then((r) => r.json() as Promise<{ tasks: { task_id: string }[] }>);
  t.same(listed.tasks.map((task) => task.task_id).sort(), [...ids].sort(), 'every task accepted before the backup is there');
  const first1 = await call(second.url, 'GET', `/status/${ids[0]}`);
  t.match(first1.body, { status: 'succeeded', ip: done.body.ip }, 'the finished launch, as it was');
  // The two caught in flight run again after the restore, and end.
  const ended = async (id: string) =>
    eventuallyAsync(async () => {
      const { body } = await call(second.url, 'GET', `/status/${id}`);
      return ['succeeded', 'failed', 'canceled'].includes(body.status!) ? body : undefined;
    }, 180_000, `task ${id} to end after the restore`);
  const launch = await ended(ids[1]!);
  t.equal(launch.status, 'succeeded', 'the launch caught in flight runs to the end');
  t.equal(liveInstancesOfTask(moto.url, ids[1]!).length, 1, 'finding the instance its first run launched: not a second one');
  const termination = await ended(ids[2]!);
  t.comment(`the termination caught in flight ended ${termination.status}: ${termination.error}`);
  const terminated = instances(moto.url).find((instance) => instance.id === done.body.instance_id);
  t.equal(terminated?.state, 'terminated', 'and its instance is terminated');
  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0);
});

t.test('mistakes get a sentence, and nothing is written', async (t) => {
  const dirs = freshHost();
  const database = databaseOf(dirs);
  const backups = tempDir('ec2-api-backups-');
  ownByServiceUser(backups);

  const none = await backup(database, path.join(backups, 'a.db'));
  t.equal(none.exitCode, 1);
  t.equal(none.stderr.trim(), `ec2-api-server: backup failed: there is no database at ${database}: set EC2_API_DB to the service's database file (as in its unit or environment)`);
  t.same(fs.readdirSync(backups), [], 'no file is made');

  const service = await startUnit(unitCommand(dirs, { AWS_ENDPOINT_URL: moto.url }));
  t.teardown(() => service.child.kill('SIGKILL'));
  const existing = path.join(backups, 'taken.db');
  fs.writeFileSync(existing, 'yesterday');
  ownByServiceUser(existing);
  const over = await backup(database, existing);
  t.equal(over.exitCode, 1);
  t.match(over.stderr, `${existing} already exists: a backup never overwrites a file; name a new one`);
  t.equal(fs.readFileSync(existing, 'utf8'), 'yesterday', 'the file is left as it was');

  const nowhere = path.join(backups, 'missing', 'b.db');
  const noDir = await backup(database, nowhere);
  t.equal(noDir.exitCode, 1);
  t.match(noDir.stderr, `the directory ${path.dirname(nowhere)} does not exist`);

  service.child.kill('SIGTERM');
  t.equal(await service.exited, 0);
});
