// Cancel: a queued task never runs; a running create is stopped and the
// instance it already launched is terminated; members of the same batch go
// back to the queue; a finished task cannot be canceled (a running delete:
// test/cancel-delete.test.ts).
import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { outputText } from '../src/ansible/output.js';
import { projectRoot } from '../src/config.js';
import {
  VALID,
  eventually,
  eventuallyAsync,
  instances,
  liveInstanceIds,
  startMoto,
  startService,
  tempDir,
  untilTerminal,
} from './helpers/harness.js';
import { processGroup } from './helpers/processes.js';

const moto = await startMoto();
t.teardown(() => moto.stop());
const launchThenHang = path.join(projectRoot, 'test', 'fixtures', 'launch-then-hang');

t.test('a queued task is canceled and never runs; a finished one answers 409', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const paused = await startService(moto.url, { EC2_API_DB: db, EC2_API_PAUSED: '1' });
  const id = (await paused.app.inject({ method: 'POST', url: '/create-async', payload: VALID })).json().task_id;
  const res = await paused.app.inject({ method: 'POST', url: `/tasks/${id}/cancel` });
  t.equal(res.statusCode, 200);
  t.match(res.json(), { task_id: id, status: 'canceled', error: 'canceled by request', started_at: null });
  const again = await paused.app.inject({ method: 'POST', url: `/tasks/${id}/cancel` });
  t.equal(again.statusCode, 409);
  t.match(again.json(), { error: /already been canceled/ });
  t.equal((await paused.app.inject({ method: 'POST', url: '/tasks/01a21c5a-0000-7000-8000-000000000000/cancel' })).statusCode, 404);
  t.equal((await paused.app.inject({ method: 'POST', url: '/tasks/nope/cancel' })).statusCode, 400);
  await paused.close();

  // Unpaused on the same database: another task runs, the canceled one does not.
  const running = await startService(moto.url, { EC2_API_DB: db });
  t.teardown(() => running.close());
  const other = (await running.app.inject({ method: 'POST', url: '/create', payload: VALID })).json();
  t.equal(other.status, 'running');
  t.equal((await running.tasks.get(id))!.status, 'canceled');
  t.same(await liveInstanceIds(moto.url, id), [], 'no instance was launched for it');
  const finished = await running.app.inject({ method: 'POST', url: `/tasks/${other.task_id}/cancel` });
  t.equal(finished.statusCode, 409);
  t.match(finished.json(), { error: /already succeeded/ });
});

t.test('a running create is stopped and the instance it launched is terminated', async (t) => {
  const service = await startService(moto.url, { EC2_API_PLAYBOOK_DIR: launchThenHang });
  t.teardown(() => service.close());
  // A client waiting on the sync route sees the cancel too.
  const waiting = service.app.inject({ method: 'POST', url: '/create', payload: VALID });
  const id = await eventuallyAsync(async () => (await service.tasks.list({ limit: 1 }))[0]?.id, 10_000, 'the task');
  const [launched] = await eventuallyAsync(async () => {
    const ids = await liveInstanceIds(moto.url, id);
    return ids.length ? ids : undefined;
  }, 60_000, 'the instance to launch');

  // A reader following the log by ?offset= from now on, as the console and `ec2-api logs -f` do.
  const followed = followLog(service.app, id);
  const pgid = (await service.tasks.get(id))!.runner_pid!;
  const res = await service.app.inject({ method: 'POST', url: `/tasks/${id}/cancel` });
  t.equal(res.statusCode, 200, res.body);
  t.match(res.json(), { status: 'canceled', instance_id: launched, instance_state: 'terminated', error: 'canceled by request' });
  t.equal(instances(moto.url).find((i) => i.id === launched)?.state, 'terminated', 'nothing is left running and billing');
  t.same(processGroup(pgid), [], 'the playbook tree is gone');
  const sync = await waiting;
  t.equal(sync.statusCode, 502);
  t.match(sync.json(), { status: 'canceled', task_id: id, ip: null });
  t.match(outputText((await service.tasks.output(id))!.log), /cleanup after cancel/);
  // The clean-up run's output goes on from the canceled run's: the log only grows, so the follower misses nothing.
  const { text, lengths } = await followed;
  t.same(lengths, [...lengths].sort((a, b) => a - b), 'X-Log-Length never went down while the clean-up ran');
  t.equal(text, (await service.app.inject({ method: 'GET', url: `/tasks/${id}/log` })).body, 'what the follower read is the whole log');
});

/** Reads a task's log by ?offset= every 20 ms until it is complete: what it read, and every X-Log-Length it saw. */
async function followLog(app: FastifyInstance, id: string): Promise<{ text: string; lengths: number[] }> {
  let text = '';
  const lengths: number[] = [];
  for (;;) {
    const res = await app.inject({ method: 'GET', url: `/tasks/${id}/log?offset=${lengths.at(-1) ?? 0}` });
    text += res.body;
    lengths.push(Number(res.headers['x-log-length']));
    if (res.headers['x-log-complete'] === 'true') return { text, lengths };
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

t.test('canceling one member of a batch requeues the others', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const paused = await startService(moto.url, { EC2_API_DB: db, EC2_API_PAUSED: '1' });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await paused.app.inject({ method: 'POST', url: '/create-async', payload: VALID })).json().task_id);
  await paused.close();

  // Started with all three queued: one batch takes them together.
  const service = await startService(moto.url, { EC2_API_DB: db, EC2_API_PLAYBOOK_DIR: launchThenHang, EC2_API_CONCURRENCY: '1' });
  t.teardown(() => service.close());
  const launched = await eventuallyAsync(async () => {
    const all = await Promise.all(ids.map((id) => liveInstanceIds(moto.url, id)));
    return all.every((found) => found.length === 1) ? all.map((found) => found[0]!) : undefined;
  }, 60_000, 'the batch to launch all three');

  const res = await service.app.inject({ method: 'POST', url: `/tasks/${ids[1]}/cancel` });
  t.match(res.json(), { status: 'canceled', instance_state: 'terminated', instance_id: launched[1] });
  for (const i of [0, 2]) {
    // The stopped run sent them back to the queue: a `queued` status after their `running` one (they may run again already).
    const statuses = (await service.tasks.eventsSince(ids[i]!, 0)).filter((e) => e.type === 'status').map((e) => e.data.status);
    t.same(statuses.slice(0, 3), ['queued', 'running', 'queued'], `member ${i} went back to the queue`);
    t.equal(instances(moto.url).find((x) => x.id === launched[i])?.state, 'running', `member ${i} keeps its instance`);
  }
});

t.test('a create that ran before and went back to the queue is cleaned up when canceled, not just marked', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  // It launches, then the service stops past its grace period: the task goes back to `queued`, its instance runs.
  const first = await startService(moto.url, { EC2_API_DB: db, EC2_API_PLAYBOOK_DIR: launchThenHang });
  const id = (await first.app.inject({ method: 'POST', url: '/create-async', payload: VALID })).json().task_id;
  const [launched] = await eventuallyAsync(async () => {
    const ids = await liveInstanceIds(moto.url, id);
    return ids.length ? ids : undefined;
  }, 60_000, 'the instance to launch');
  await first.close();

  const paused = await startService(moto.url, { EC2_API_DB: db, EC2_API_PAUSED: '1' });
  t.match((await paused.tasks.get(id)), { status: 'queued', attempts: 0 }, 'queued again, after a run');
  const asked = Date.now();
  const res = await paused.app.inject({ method: 'POST', url: `/tasks/${id}/cancel` });
  t.equal(res.statusCode, 202, 'the cancel is recorded; the clean-up is to come');
  t.ok(Date.now() - asked < 30_000, 'answered at once: nothing runs the clean-up while paused, so it does not wait the 2 minutes for it');
  t.match(res.json(), { status: 'queued' });
  t.same(await liveInstanceIds(moto.url, id), [launched], 'nothing pretends the instance is gone');
  await paused.close();

  const service = await startService(moto.url, { EC2_API_DB: db });
  t.teardown(() => service.close());
  const task = await untilTerminal(service.tasks, id);
  t.match(task, { status: 'canceled', instance_id: launched, instance_state: 'terminated', error: 'canceled by request' });
  t.equal(instances(moto.url).find((i) => i.id === launched)?.state, 'terminated', 'nothing is left running and billing');
});

t.test('a canceled create interrupted too often is still cleaned up at the next start, not abandoned', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const first = await startService(moto.url, { EC2_API_DB: db });
  const created = (await first.app.inject({ method: 'POST', url: '/create', payload: VALID })).json();
  t.equal(created.status, 'running');
  await first.close();
  // As crashes would leave it: running, its cancel recorded, EC2_API_MAX_ATTEMPTS runs already interrupted
  // (and, never ended, still holding its password hash, which the real end removed).
  const conn = new Database(db);
  conn
    .prepare(
      `UPDATE tasks SET status = 'running', attempts = 3, cancel_requested = 1, finished_at = NULL,
         params = json_set(params, '$.password_hash', '$6$salt$hash') WHERE id = ?`,
    )
    .run(created.task_id);
  conn.close();

  const service = await startService(moto.url, { EC2_API_DB: db, EC2_API_MAX_ATTEMPTS: '3' });
  t.teardown(() => service.close());
  const task = await untilTerminal(service.tasks, created.task_id);
  t.match(task, { status: 'canceled', instance_state: 'terminated' }, 'canceled, its instance terminated');
  t.equal(instances(moto.url).find((i) => i.id === created.instance_id)?.state, 'terminated');
});
