// How failures reach the caller: a playbook that fails (502), a sync wait
// that runs out while the task goes on (504), and a playbook that hangs
// until EC2_API_TASK_TIMEOUT kills its whole process tree.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { projectRoot } from '../src/config.js';
import { VALID, eventually, eventuallyAsync, liveInstancesOfTask, startMoto, startService, untilTerminal } from './helpers/harness.js';
import { processGroup } from './helpers/processes.js';

const moto = await startMoto();
t.teardown(() => moto.stop());


t.test('a playbook that fails answers 502 with the reason, and the task keeps the detail', async (t) => {
  // An EC2 endpoint that refuses the credentials, as AWS does with wrong keys.
  const refusing = http.createServer((_req, res) => {
    res.writeHead(401, { 'content-type': 'text/xml' });
    res.end(
      '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>AuthFailure</Code>' +
        '<Message>AWS was not able to validate the provided access credentials</Message></Error></Errors></Response>',
    );
  });
  await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
  const { port } = refusing.address() as AddressInfo;
  const service = await startService(`http://127.0.0.1:${port}`);
  t.teardown(async () => {
    await service.close();
    refusing.close();
  });
  const res = await service.app.inject({ method: 'POST', url: '/create', payload: VALID });
  t.equal(res.statusCode, 502, res.body);
  const body = res.json();
  t.match(body, { ip: null, status: 'failed', task_id: String, error: /AuthFailure.*validate the provided access credentials/ });
  const task = (await service.tasks.get(body.task_id))!;
  t.equal(task.status, 'failed');
  t.ok(task.error && task.error.length > 10, 'the error says what went wrong');
  t.ok(task.finished_at);

  const del = await service.app.inject({ method: 'GET', url: '/delete/54.1.2.3' });
  t.equal(del.statusCode, 502, 'a failed delete (not a not-found) is 502 too');
  t.match(del.json(), { ip: '54.1.2.3', status: 'failed', error: String });
});

t.test('a sync call that outlives EC2_API_SYNC_WAIT answers 504; the task goes on', async (t) => {
  const service = await startService(moto.url, { EC2_API_SYNC_WAIT: '1' });
  t.teardown(() => service.close());
  const res = await service.app.inject({ method: 'POST', url: '/create', payload: VALID });
  t.equal(res.statusCode, 504, res.body);
  const body = res.json();
  t.match(body, { ip: null, task_id: String, error: /still .* follow \/status/ });
  t.ok(['queued', 'running'].includes(body.status));
  const done = await untilTerminal(service.tasks, body.task_id);
  t.equal(done.status, 'succeeded', 'the task finished although nobody waited');
  t.equal(liveInstancesOfTask(moto.url, body.task_id).length, 1);
});

t.test('a hanging playbook is killed at EC2_API_TASK_TIMEOUT with its whole tree', async (t) => {
  const service = await startService(moto.url, {
    EC2_API_TASK_TIMEOUT: '4',
    EC2_API_PLAYBOOK_DIR: path.join(projectRoot, 'test', 'fixtures', 'hanging-playbooks'),
  });
  t.teardown(() => service.close());
  const started = Date.now();
  const res = await service.app.inject({ method: 'POST', url: '/create-async', payload: VALID });
  t.equal(res.statusCode, 202);
  const { task_id } = res.json();

  const pgid = await eventuallyAsync(async () => (await service.tasks.get(task_id))?.runner_pid, 30_000, 'the playbook to start');
  await eventually(() => processGroup(pgid).length > 2, 30_000, 'the hanging step to start');
  const done = await untilTerminal(service.tasks, task_id, 30_000);
  const elapsed = (Date.now() - started) / 1000;
  t.equal(done.status, 'failed');
  t.match(done.error, /EC2_API_TASK_TIMEOUT \(4 s\)/, 'the error names the timeout');
  t.ok(elapsed >= 4 && elapsed < 20, `killed after ${elapsed.toFixed(1)} s`);
  t.same(processGroup(pgid), [], 'no process of the run is left: ansible-playbook, its forks, sleep');
});

t.test('a long log keeps its beginning and its end: the recap and the final error survive', async (t) => {
  const service = await startService(moto.url, { EC2_API_PLAYBOOK_DIR: path.join(projectRoot, 'test', 'fixtures', 'noisy-playbooks') });
  t.teardown(() => service.close());
  const res = await service.app.inject({ method: 'POST', url: '/create', payload: VALID });
  t.equal(res.statusCode, 502, 'the playbook failed');
  const id = res.json().task_id;
  const log = await service.app.inject({ url: `/tasks/${id}/log` });
  t.equal(log.headers['x-log-complete'], 'true');
  const size = Number(log.headers['x-log-length']);
  t.ok(size > 1_572_864, `X-Log-Length is all the playbook wrote (${size})`);
  t.ok(log.body.length < 64 * 1024 + 1024 * 1024 + 200, `what is kept is capped (${log.body.length})`);
  t.match(log.body, /START-OF-OUTPUT/, 'the beginning is kept');
  t.match(log.body, /characters of output left out here/, 'a line says what was left out');
  t.match(log.body, /THE-FINAL-ERROR[\s\S]*PLAY RECAP/, 'the final error and the recap, at the end, are kept');
  const tail = await service.app.inject({ url: `/tasks/${id}/log?offset=${size - 200}` });
  t.equal(tail.body, log.body.slice(-200), '?offset= counts the whole output');
});
