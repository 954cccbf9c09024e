// Many callers at once: concurrent deletes of one IP never run two playbooks
// against it at the same time, and a burst of creates is either accepted
// durably (202) or refused cleanly (503), even with a kill -9 right after.
import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import { VALID, instances, spawnServer, startMoto, startService, tempDir } from './helpers/harness.js';
import { isGroupLeader, isOurChild, pgrep } from './helpers/processes.js';

const moto = await startMoto();
t.teardown(() => moto.stop());

t.test('concurrent deletes of one IP, default batching: one playbook at a time, one terminates, the rest see not_found', async (t) => {
  // Default settings: batches of up to EC2_API_BATCH_SIZE, two workers. Deletes of one IP must still never share a batch.
  const service = await startService(moto.url);
  t.teardown(() => service.close());
  const created = await service.app.inject({ method: 'POST', url: '/create', payload: VALID });
  t.equal(created.statusCode, 200, created.body);
  const { ip, instance_id } = created.json();

  let sampling = true;
  let mostAtOnce = 0;
  const sampler = (async () => {
    while (sampling) {
      // Only this service's runs: other test files may run delete playbooks meanwhile.
      const runs = pgrep('playbooks/delete.yml').filter((pid) => isGroupLeader(pid) && isOurChild(pid)).length;
      mostAtOnce = Math.max(mostAtOnce, runs);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  const answers = await Promise.all(Array.from({ length: 4 }, () => service.app.inject({ method: 'GET', url: `/delete/${ip}` })));
  sampling = false;
  await sampler;

  const codes = answers.map((a) => a.statusCode).sort();
  t.same(codes, [200, 404, 404, 404], 'one termination, three not_found, no 5xx');
  t.equal(answers.find((a) => a.statusCode === 200)!.json().instance_id, instance_id);
  for (const a of answers.filter((a) => a.statusCode === 404)) t.match(a.json(), { ip, status: 'not_found' });
  t.equal(mostAtOnce, 1, 'never two delete playbooks at once');
  t.equal(instances(moto.url).find((i) => i.id === instance_id)?.state, 'terminated');
});

t.test('a burst of 2,000 creates from 32 connections, then kill -9: every 202 survives', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url, EC2_API_PAUSED: '1', EC2_API_MAX_QUEUED: '800' });
  const accepted: string[] = [];
  const counts = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < 2000) {
      next++;
      const res = await fetch(`${server.url}/create-async`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(VALID),
      });
      counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
      const body = (await res.json()) as { task_id?: string };
      if (res.status === 202) accepted.push(body.task_id!);
      else t.equal(res.headers.get('retry-after') !== null, true, 'a 503 says when to retry');
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  server.child.kill('SIGKILL');
  await server.exited;

  t.same([...counts.keys()].sort(), [202, 503], `answers: ${JSON.stringify(Object.fromEntries(counts))}`);
  t.equal(accepted.length, 800, 'exactly EC2_API_MAX_QUEUED were accepted');

  const conn = new Database(db, { readonly: true });
  t.teardown(() => conn.close());
  const stored = new Set((conn.prepare('SELECT id FROM tasks').all() as { id: string }[]).map((r) => r.id));
  t.equal(stored.size, accepted.length, 'nothing refused was stored');
  t.equal(accepted.filter((id) => !stored.has(id)).length, 0, 'every 202 is in the database after kill -9');
});
