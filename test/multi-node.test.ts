// Several nodes sharing one PostgreSQL (docs/multi-node.md): real server
// processes (dist/server.js), a private PostgreSQL cluster, moto, and real
// ansible-playbook runs. What must hold across nodes: one queue, a dead
// node's tasks finished by the others (one instance each), idempotency keys,
// event streams, one delete per IP.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createParser } from 'eventsource-parser';
import { eventuallyAsync, instances, isAlive, spawnServer, startMoto, tempDir, VALID, type ServerProcess } from './helpers/harness.js';
import { startPostgres } from './helpers/postgres.js';

// Six scenarios of real server processes and playbook runs, on a machine running other suites too.
t.setTimeout(600_000);

const moto = await startMoto();
t.teardown(() => moto.stop());
const cluster = await startPostgres();
t.teardown(() => cluster.stop());

/** A node on `db`, with its own run folders; a short lease, so that a dead node's tasks move on within seconds. */
async function node(t: Teardown, db: string, name: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const server = await spawnServer({
    EC2_API_DB: db,
    AWS_ENDPOINT_URL: moto.url,
    EC2_API_RUNS_DIR: path.join(tempDir(), 'runs'),
    EC2_API_NODE_ID: name,
    EC2_API_LEASE_SECONDS: '3',
    EC2_API_SHUTDOWN_GRACE: '0',
    ...env,
  });
  t.teardown(async () => {
    if (server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
  });
  return server;
}

/** The pids whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  return fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name)).flatMap((name) => {
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid ? [Number(name)] : [];
    } catch {
      return []; // gone meanwhile
    }
  });
}

/** The part of a tap test these helpers need. */
interface Teardown {
  teardown(fn: () => unknown): void;
}

const post = (base: string, url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}${url}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

const getJson = async (base: string, url: string) => (await fetch(`${base}${url}`)).json() as Promise<Record<string, unknown>>;

/** How many live instances each task launched: one listing of moto, however many tasks (a listing per task is slow). */
function instancesOf(ids: string[]): number[] {
  const live = instances(moto.url).filter((i) => i.state !== 'terminated');
  return ids.map((id) => live.filter((i) => i.tags.TaskId === id).length);
}

/** The task once it has ended, as node `base` reports it. */
const ended = (base: string, id: string, ms = 180_000) =>
  eventuallyAsync(async () => {
    const task = await getJson(base, `/tasks/${id}`);
    return ['succeeded', 'failed', 'canceled'].includes(task.status as string) ? task : undefined;
  }, ms, `task ${id} to end`);

/** The whole event history of an ended task, as its SSE stream sends it before it closes. */
async function history(base: string, id: string): Promise<{ event: string; data: Record<string, unknown> }[]> {
  const events: { event: string; data: Record<string, unknown> }[] = [];
  const parser = createParser({ onEvent: (e) => events.push({ event: e.event ?? 'message', data: JSON.parse(e.data) as Record<string, unknown> }) });
  parser.feed(await (await fetch(`${base}/tasks/${id}/events`)).text());
  return events;
}

/** Collects the SSE events of `url` until `stop` is aborted. */
function follow(url: string, stop: AbortSignal): { events: { event?: string; data: string }[]; ready: Promise<void> } {
  const events: { event?: string; data: string }[] = [];
  let ready!: () => void;
  const readyPromise = new Promise<void>((resolve) => (ready = resolve));
  void (async () => {
    const res = await fetch(url, { signal: stop });
    const parser = createParser({
      onEvent: (event) => {
        events.push({ event: event.event, data: event.data });
        if (event.event === 'ready') ready();
      },
    });
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
  })().catch(() => undefined);
  return { events, ready: readyPromise };
}

t.test('three nodes share one queue; a client on node B sees node A\'s tasks on /events; /tasks is the same on each', async (t) => {
  const db = await cluster.database();
  const nodes = [await node(t, db, 'a'), await node(t, db, 'b'), await node(t, db, 'c')];
  const [a, b] = nodes as [ServerProcess, ServerProcess, ServerProcess];
  const stop = new AbortController();
  t.teardown(() => stop.abort());
  const feed = follow(`${b.url}/events`, stop.signal);
  await feed.ready;

  const ids: string[] = [];
  for (let i = 0; i < 9; i++) {
    const res = await post(nodes[i % 3]!.url, '/instances', VALID);
    t.equal(res.status, 202, 'accepted');
    ids.push(((await res.json()) as { task_id: string }).task_id);
  }
  for (const id of ids) t.match(await ended(b.url, id), { status: 'succeeded', instance_state: 'running' }, `task ${id} ran`);
  t.same(instancesOf(ids), ids.map(() => 1), 'one instance each');

  const fromA = ids.filter((_, i) => i % 3 === 0);
  await eventuallyAsync(async () => {
    const seen = feed.events.filter((e) => e.event === 'status').map((e) => JSON.parse(e.data) as { task_id: string; status: string });
    return fromA.every((id) => seen.some((e) => e.task_id === id && e.status === 'queued') && seen.some((e) => e.task_id === id && e.status === 'succeeded'));
  }, 20_000, "node A's tasks on node B's /events");
  t.pass("node B's /events carried node A's tasks from queued to succeeded");

  const listed = await Promise.all(nodes.map(async (n) => ((await getJson(n.url, '/tasks?limit=500')).tasks as { task_id: string }[]).map((x) => x.task_id).sort()));
  t.same(listed[0], [...ids].sort(), 'node A lists every task');
  t.same(listed[1], listed[0], 'node B lists the same');
  t.same(listed[2], listed[0], 'node C too');
  const metrics = await (await fetch(`${a.url}/metrics`)).text();
  t.match(metrics, /ec2_api_tasks\{action="create",status="succeeded"\} 9/, "node A's /metrics counts the cluster's tasks");
});

t.test('one Idempotency-Key sent to two nodes at once makes one task', async (t) => {
  const db = await cluster.database();
  const [a, b] = [await node(t, db, 'a', { EC2_API_PAUSED: '1' }), await node(t, db, 'b', { EC2_API_PAUSED: '1' })];
  const headers = { 'idempotency-key': 'deploy-42' };
  const answers = await Promise.all([post(a.url, '/instances', VALID, headers), post(b.url, '/instances', VALID, headers)]);
  t.same(answers.map((r) => r.status), [202, 202], 'both accepted');
  const ids = await Promise.all(answers.map(async (r) => ((await r.json()) as { task_id: string }).task_id));
  t.equal(ids[0], ids[1], 'the same task');
  t.same(answers.map((r) => r.headers.get('idempotent-replayed')).filter(Boolean), ['true'], 'one of them says it replays the other');
  t.equal(((await getJson(a.url, '/tasks?limit=500')).tasks as unknown[]).length, 1, 'one task stored');
});

t.test('three concurrent deletes of one IP on three nodes: one 200, two 404', async (t) => {
  const db = await cluster.database();
  const nodes = [await node(t, db, 'a'), await node(t, db, 'b'), await node(t, db, 'c')];
  const created = await post(nodes[0]!.url, '/instances?wait=true', VALID);
  t.equal(created.status, 201, 'launched');
  const { ip } = (await created.json()) as { ip: string };
  const answers = await Promise.all(nodes.map((n) => fetch(`${n.url}/instances/${ip}?wait=true`, { method: 'DELETE' })));
  t.same(answers.map((r) => r.status).sort(), [200, 404, 404], 'one terminated it; the others found nothing');
});

t.test('kill -9 of a node mid-batch: the other nodes finish its tasks, one instance each', async (t) => {
  const db = await cluster.database();
  // A slow playbook on node A only: its batch is certainly running when it dies.
  const a = await node(t, db, 'a', { EC2_API_BATCH_DELAY_MS: '500' });
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) ids.push(((await (await post(a.url, '/instances', VALID)).json()) as { task_id: string }).task_id);
  await eventuallyAsync(async () => {
    const tasks = (await getJson(a.url, '/tasks?status=running&limit=500')).tasks as unknown[];
    return tasks.length > 0;
  }, 60_000, 'node A to run its batch');
  const runs = await eventuallyAsync(async () => {
    const found = childrenOf(a.child.pid!).filter((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('ansible-playbook'));
    return found.length ? found : undefined;
  }, 60_000, 'node A\'s playbook to start');
  const killedAt = new Date().toISOString();
  a.child.kill('SIGKILL');
  await a.exited;
  // Its runs die with it (the events pipe's reader is gone): none goes on launching beside the node that takes over.
  t.ok(await eventuallyAsync(async () => runs.every((pid) => !isAlive(pid)), 15_000, 'node A\'s playbooks to die with it'), 'its playbook runs died with it');
  const [b] = [await node(t, db, 'b'), await node(t, db, 'c')];
  for (const id of ids) t.match(await ended(b!.url, id), { status: 'succeeded' }, `task ${id} finished by another node`);
  t.same(instancesOf(ids), ids.map(() => 1), 'one instance for each, though two nodes ran them');
  // Nodes B and C started while A's rows were still `running`: neither may take them for its own to resume.
  const launches = await Promise.all(
    ids.map(async (id) => (await history(b!.url, id)).filter((e) => e.event === 'step_start' && e.data.step === 1 && String(e.data.at) > killedAt).length),
  );
  t.same(launches, ids.map(() => 1), 'after the kill, each task\'s launch step ran once: by the node that claimed it when A\'s lease lapsed');
});

t.test('the run folders are private to each node: a second node on the same EC2_API_RUNS_DIR stops with a sentence, the first runs on', async (t) => {
  const dir = path.join(tempDir(), 'runs');
  const db = await cluster.database();
  const first = await node(t, db, 'solo', { EC2_API_RUNS_DIR: dir });
  await t.rejects(
    node(t, db, 'twin', { EC2_API_RUNS_DIR: dir }),
    { message: new RegExp(`another ec2-api \\(pid ${first.child.pid} on [^)]+\\) is using ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}; stop it, or set EC2_API_RUNS_DIR to another folder`) },
    'it names the holder and the setting',
  );
  const res = await post(first.url, '/create-async', VALID);
  t.equal(res.status, 202, 'the first node still takes work');
  t.match(await ended(first.url, ((await res.json()) as { task_id: string }).task_id), { status: 'succeeded' }, 'and runs it');
  t.equal(fs.statSync(dir).mode & 0o777, 0o700, 'its run folders are the owner\'s only');
});

t.test('a rolling restart while a client submits creates loses nothing: every answer is 2xx, or 503 with Retry-After', async (t) => {
  const db = await cluster.database();
  // A stopping node hands its tasks back itself: no lease need lapse here, and a 3 s lease can lapse on a
  // machine this loaded (another node then runs a task beside it, and moto, unlike EC2, ignores the ClientToken).
  const env = { EC2_API_SHUTDOWN_GRACE: '3', EC2_API_LEASE_SECONDS: '15' };
  const names = ['a', 'b', 'c'];
  const live: ServerProcess[] = [];
  for (const name of names) live.push(await node(t, db, name, env));

  const answers: { status: number; retryAfter: string | null }[] = [];
  const accepted: string[] = [];
  let unreachable = 0;
  let submitting = true;
  const client = (async () => {
    for (let i = 0; submitting; i++) {
      const target = live[i % live.length]!;
      try {
        const res = await post(target.url, '/instances', VALID);
        answers.push({ status: res.status, retryAfter: res.headers.get('retry-after') });
        if (res.status === 202) accepted.push(((await res.json()) as { task_id: string }).task_id);
        else await res.body?.cancel();
      } catch {
        // The node closed its socket (a load balancer sends the request to another node): not an answer.
        unreachable++;
      }
      await new Promise((resolve) => setTimeout(resolve, 600));
    }
  })();

  for (let i = 0; i < names.length; i++) {
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const old = live[i]!;
    old.child.kill('SIGTERM');
    t.equal(await old.exited, 0, `node ${names[i]} stopped cleanly`);
    live[i] = await node(t, db, `${names[i]}2`, env);
  }
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  submitting = false;
  await client;

  const bad = answers.filter((a) => !(a.status >= 200 && a.status < 300) && !(a.status === 503 && a.retryAfter));
  t.same(bad, [], 'every answer is 2xx or 503 with Retry-After');
  t.ok(accepted.length >= 5, `creates were accepted throughout (${accepted.length}; ${unreachable} sent to a closed socket)`);
  for (const id of accepted) {
    const task = await ended(live[0]!.url, id);
    t.match(task, { status: 'succeeded' }, `task ${id} ran${task.error ? `: ${String(task.error)}` : ''}`);
  }
  t.same(instancesOf(accepted).filter((n) => n !== 1), [], 'one instance for each accepted create');
});
