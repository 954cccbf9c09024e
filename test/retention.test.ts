// What is kept, and for how long (docs/task-lifecycle.md): a batch's log is
// stored once; a create's password hash is gone from the database file once
// the task has ended (unless its idempotency key may still replay it);
// ended tasks are deleted with their events and logs after
// EC2_API_RETENTION, queued ones and keyed ones never. Real service, real
// Ansible, real moto.
import fs from 'node:fs';
import t from 'tap';
import { VALID, eventually, eventuallyAsync, startMoto, startService, storedParams, untilTerminal } from './helpers/harness.js';

const moto = await startMoto();
t.teardown(() => moto.stop());

/** Every SHA-512-crypt hash anywhere in these bytes. */
const hashesIn = (bytes: Buffer) => [...new Set(bytes.toString('latin1').match(/\$6\$[A-Za-z0-9./]{1,16}\$[A-Za-z0-9./]{86}/g) ?? [])];

t.test('the tasks of one batch share one stored log, and each reads it whole, as before', async (t) => {
  // Queued while paused, then all claimed at the next start: one batch.
  const paused = await startService(moto.url, { EC2_API_PAUSED: '1' });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await paused.app.inject({ method: 'POST', url: '/create-async', payload: { username: `batch${i}`, password: 'password1' } });
    ids.push(res.json().task_id);
  }
  await paused.close();
  const service = await startService(moto.url, { EC2_API_DB: paused.config.dbPath });
  t.teardown(() => service.close());
  await Promise.all(ids.map((id) => untilTerminal(service.tasks, id)));
  // A task's result comes early; its log is complete once the whole run has ended.
  await eventuallyAsync(async () => (await Promise.all(ids.map((id) => service.tasks.output(id)))).every((output) => output?.complete), 60_000, 'the run to end');
  const rows = ids.map((id) => service.db.prepare('SELECT status, batch_id, run_id FROM tasks WHERE id = ?').get(id) as { status: string; batch_id: string; run_id: string });
  t.same(rows.map((row) => row.status), ['succeeded', 'succeeded', 'succeeded']);
  t.equal(new Set(rows.map((row) => row.batch_id)).size, 1, 'the three ran as one batch');
  t.equal(new Set(rows.map((row) => row.run_id)).size, 1, 'and point to one stored log');
  t.equal((service.db.prepare('SELECT count(*) AS n FROM runs').get() as { n: number }).n, 1, 'stored once, not three times');
  const logs = await Promise.all(ids.map((id) => service.app.inject({ url: `/tasks/${id}/log` })));
  for (const log of logs) {
    t.equal(log.statusCode, 200);
    t.equal(log.headers['x-log-complete'], 'true');
    t.match(log.body, /PLAY RECAP/);
    t.equal(log.body, logs[0]!.body, 'every task of the batch reads the same whole log');
  }
  const offset = Number(logs[2]!.headers['x-log-length']) - 30;
  t.equal((await service.app.inject({ url: `/tasks/${ids[2]}/log?offset=${offset}` })).body, logs[2]!.body.slice(offset), '?offset as before');
});

t.test('after a clean stop the database file holds no hash of an ended create; a keyed one stays while its key lives', async (t) => {
  const service = await startService(moto.url);
  const plain = await service.app.inject({ method: 'POST', url: '/create', payload: { username: 'plainuser', password: 'plain-secret-1' } });
  t.equal(plain.statusCode, 200, plain.body);
  const keyedBody = { username: 'keyeduser', password: 'keyed-secret-1' };
  const headers = { 'idempotency-key': 'retention-test-key' };
  const keyed = await service.app.inject({ method: 'POST', url: '/create', payload: keyedBody, headers });
  t.equal(keyed.statusCode, 200, keyed.body);
  const plainId = plain.json().task_id as string;
  const keyedId = keyed.json().task_id as string;
  t.equal(storedParams(service.db, plainId).password_hash, undefined, 'the ended create no longer holds its hash');
  t.same(storedParams(service.db, plainId).username, 'plainuser', 'the rest of its parameters stay');
  const keyedHash = storedParams(service.db, keyedId).password_hash!;
  t.match(keyedHash, /^\$6\$/, 'the keyed create keeps its hash while the key lives…');
  const replay = await service.app.inject({ method: 'POST', url: '/create-async', payload: keyedBody, headers });
  t.equal(replay.headers['idempotent-replayed'], 'true', '…so that a replay with the same password is recognised');
  t.equal(replay.json().task_id, keyedId);
  const other = await service.app.inject({ method: 'POST', url: '/create-async', payload: { ...keyedBody, password: 'another-one' }, headers });
  t.equal(other.statusCode, 409, 'and one with another password is refused');
  const file = service.config.dbPath;
  await service.close();

  t.notOk(fs.existsSync(`${file}-wal`), 'a clean stop leaves no -wal file');
  t.same(hashesIn(fs.readFileSync(file)), [keyedHash], 'the file holds the keyed hash and no other (none of the ended plain create)');
});

t.test('EC2_API_RETENTION: ended tasks go with their events and logs, queued and keyed ones stay', async (t) => {
  const service = await startService(moto.url, { EC2_API_RETENTION: '2s' });
  t.teardown(() => service.close());
  const inject = service.app.inject.bind(service.app);
  const keyedId = (await inject({ method: 'POST', url: '/create', payload: VALID, headers: { 'idempotency-key': 'kept-key' } })).json().task_id as string;
  const created = (await inject({ method: 'POST', url: '/create', payload: VALID })).json() as { task_id: string; ip: string };
  const plainId = created.task_id;
  t.equal((await service.tasks.get(plainId))!.status, 'succeeded');
  t.ok((service.db.prepare('SELECT count(*) FROM task_events WHERE task_id = ?').pluck().get(plainId) as number) >= 3, 'it has its events (queued, running, steps, succeeded)…');

  // Past the retention, with a sweep a second: a create whose instance still runs is the record of its owner and expiry.
  await new Promise((resolve) => setTimeout(resolve, 4_000));
  t.equal((await service.tasks.get(plainId))?.status, 'succeeded', 'a create whose instance still runs stays past EC2_API_RETENTION');
  const deleteId = (await inject({ url: `/delete/${created.ip}` })).json().task_id as string;
  const finished = (await service.tasks.get(deleteId))!;
  t.equal(finished.status, 'succeeded', 'its instance terminated');

  await eventuallyAsync(async () => (await service.tasks.get(plainId)) === undefined && (await service.tasks.get(deleteId)) === undefined, 60_000, 'the ended tasks to be deleted');
  t.ok(Date.now() - Date.parse(finished.finished_at!) >= 2_000, 'not before EC2_API_RETENTION has passed');
  t.equal((await inject({ url: `/status/${plainId}` })).statusCode, 404, '/status says it is gone');
  t.equal((await inject({ url: `/tasks/${plainId}/log` })).statusCode, 404, 'and its log');
  const events = service.db.prepare('SELECT count(*) AS n FROM task_events WHERE task_id = ?').get(plainId) as { n: number };
  t.equal(events.n, 0, 'and its events');
  t.equal((await service.tasks.get(keyedId))?.status, 'succeeded', 'a task its idempotency key still points to stays');
  t.equal((await inject({ url: `/tasks/${keyedId}/log` })).statusCode, 200, 'with its log');
});

t.test('EC2_API_RETENTION never deletes a queued task', async (t) => {
  const service = await startService(moto.url, { EC2_API_RETENTION: '1s', EC2_API_PAUSED: '1' });
  t.teardown(() => service.close());
  const inject = service.app.inject.bind(service.app);
  const waiting = (await inject({ method: 'POST', url: '/create-async', payload: VALID })).json().task_id as string;
  const canceled = (await inject({ method: 'POST', url: '/create-async', payload: VALID })).json().task_id as string;
  t.equal((await inject({ method: 'POST', url: `/tasks/${canceled}/cancel` })).json().status, 'canceled');
  // The canceled one ended, and goes; the sweeps that delete it also see the queued one, older than the retention.
  await eventuallyAsync(async () => (await service.tasks.get(canceled)) === undefined, 60_000, 'the canceled task to be deleted');
  t.ok(Date.now() - Date.parse((await service.tasks.get(waiting))!.created_at) > 1_000, 'the queued task is older than EC2_API_RETENTION');
  t.equal((await service.tasks.get(waiting))?.status, 'queued', 'and still there');
  t.match(storedParams(service.db, waiting).password_hash, /^\$6\$/, 'with its hash: it will run');
});
