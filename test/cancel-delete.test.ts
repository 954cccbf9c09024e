// Cancel of a delete: a queued one ends at once (test/cancel.test.ts); a
// running one cannot be canceled, since its TerminateInstances may have gone
// out: 409 with a sentence, nothing changes, and its batch-mates (which a
// stopped run would send back to fail `not_found`) run on unharmed.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { projectRoot } from '../src/config.js';
import { VALID, eventually, eventuallyAsync, instances, startMoto, startService, tempDir, untilTerminal } from './helpers/harness.js';

const moto = await startMoto();
t.teardown(() => moto.stop());
const gatedDelete = path.join(projectRoot, 'test', 'fixtures', 'gated-delete');

t.test('a running delete cannot be canceled (409), and its batch-mate is not harmed', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const first = await startService(moto.url, { EC2_API_DB: db });
  const created: { status: string; ip: string; instance_id: string }[] = [];
  for (let i = 0; i < 2; i++) created.push((await first.app.inject({ method: 'POST', url: '/create', payload: VALID })).json());
  await first.close();
  t.same(created.map((c) => c.status), ['running', 'running'], 'two instances to delete');

  // Queued while paused, so that one batch takes both deletes.
  const paused = await startService(moto.url, { EC2_API_DB: db, EC2_API_PAUSED: '1' });
  const ids: string[] = [];
  for (const { ip } of created) ids.push((await paused.app.inject({ method: 'GET', url: `/delete-async/${ip}` })).json().task_id);
  await paused.close();

  const gate = path.join(tempDir(), 'gate');
  process.env.EC2_API_TEST_GATE = gate;
  t.teardown(() => delete process.env.EC2_API_TEST_GATE);
  const service = await startService(moto.url, { EC2_API_DB: db, EC2_API_PLAYBOOK_DIR: gatedDelete });
  t.teardown(() => service.close());
  // Both running in one playbook run, held before it reaches EC2.
  const runner = await eventuallyAsync(async () => {
    const tasks = await Promise.all(ids.map(async (id) => (await service.tasks.get(id))!));
    return tasks.every((task) => task.status === 'running' && task.runner_pid) && tasks[0]!.runner_pid === tasks[1]!.runner_pid
      ? tasks[0]!.runner_pid
      : undefined;
  }, 60_000, 'both deletes to run in one playbook');

  const res = await service.app.inject({ method: 'POST', url: `/tasks/${ids[0]}/cancel` });
  t.equal(res.statusCode, 409, res.body);
  t.match(res.json(), { error: /already running.*cannot be canceled/ });
  t.match((await service.tasks.get(ids[0]!)), { status: 'running', runner_pid: runner, cancel_requested: false }, 'nothing changed: it runs on');
  t.match((await service.tasks.get(ids[1]!)), { status: 'running', runner_pid: runner }, 'its batch-mate runs on in the same run');

  fs.writeFileSync(gate, '');
  for (const [i, id] of ids.entries()) {
    const task = await untilTerminal(service.tasks, id);
    t.match(task, { status: 'succeeded', instance_state: 'terminated', instance_id: created[i]!.instance_id }, `delete ${i} did what it was asked`);
    const statuses = (await service.tasks.eventsSince(id, 0)).filter((e) => e.type === 'status').map((e) => e.data.status);
    t.same(statuses, ['queued', 'running', 'succeeded'], `delete ${i} was never sent back to the queue`);
    t.equal(instances(moto.url).find((x) => x.id === created[i]!.instance_id)?.state, 'terminated');
  }
});
