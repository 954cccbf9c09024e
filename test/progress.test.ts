// What `progress` says: the step a running task is at; for a succeeded task,
// that it is done (not the step its early result came at). A row whose
// progress is not readable fails nothing: /status and /tasks answer, the
// next start recovers it, and the task runs (docs/task-lifecycle.md,
// "Damaged rows").
import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import { VALID, startMoto, startService, tempDir, untilTerminal } from './helpers/harness.js';

const moto = await startMoto();
t.teardown(() => moto.stop());

t.test('a succeeded create and delete say they are done', async (t) => {
  const service = await startService(moto.url);
  t.teardown(() => service.close());
  const created = (await service.app.inject({ method: 'POST', url: '/create', payload: VALID })).json();
  t.equal(created.status, 'running', 'the instance runs');
  const create = (await service.app.inject({ method: 'GET', url: `/status/${created.task_id}` })).json();
  t.match(create, { status: 'succeeded' });
  t.equal(create.progress.name, 'done');
  t.ok(create.progress.of > 1, 'out of the playbook steps it had');
  t.equal(create.progress.step, create.progress.of, 'the last of them');

  const deleted = (await service.app.inject({ method: 'GET', url: `/delete/${created.ip}` })).json();
  t.equal(deleted.status, 'terminated');
  const del = (await service.app.inject({ method: 'GET', url: `/status/${deleted.task_id}` })).json();
  t.match(del, { status: 'succeeded', progress: { name: 'done' } });
  t.equal(del.progress.step, del.progress.of);
});

t.test('unreadable progress: /status and /tasks answer, and the next start runs the task', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const first = await startService(moto.url, { EC2_API_DB: db });
  const finished = (await first.app.inject({ method: 'POST', url: '/create', payload: VALID })).json();
  t.equal(finished.status, 'running');
  await first.close();
  const paused = await startService(moto.url, { EC2_API_DB: db, EC2_API_PAUSED: '1' });
  const interrupted = (await paused.app.inject({ method: 'POST', url: '/create-async', payload: VALID })).json().task_id as string;
  await paused.close();

  // As a damaged file, or a hand edit, would leave them: one finished, one left running by a crash mid-step.
  const conn = new Database(db);
  conn.prepare(`UPDATE tasks SET progress = '{"step": 1, "of"' WHERE id = ?`).run(finished.task_id);
  conn
    .prepare(`UPDATE tasks SET status = 'running', attempts = 1, started_at = ?, progress = 'not json at all' WHERE id = ?`)
    .run(new Date().toISOString(), interrupted);
  conn.close();

  const service = await startService(moto.url, { EC2_API_DB: db });
  t.teardown(() => service.close());
  const status = await service.app.inject({ method: 'GET', url: `/status/${finished.task_id}` });
  t.equal(status.statusCode, 200, status.body);
  t.match(status.json(), { task_id: finished.task_id, status: 'succeeded', progress: null });
  const list = await service.app.inject({ method: 'GET', url: '/tasks' });
  t.equal(list.statusCode, 200, list.body);
  t.ok(list.json().tasks.some((task: { task_id: string }) => task.task_id === finished.task_id), 'the listing includes it');
  const task = await untilTerminal(service.tasks, interrupted);
  t.match(task, { status: 'succeeded', attempts: 2 }, 'the interrupted task was recovered and ran');
});
