// Seeing tasks: listing with filters and cursors, one task, its log (live
// and stored), and its live events over SSE — against real runs on moto.
import t from 'tap';
import { VALID, eventually, startMoto, startService, untilTerminal, type TestService } from './helpers/harness.js';

const moto = await startMoto();
const service: TestService = await startService(moto.url);
t.teardown(async () => {
  await service.close();
  await moto.stop();
});

const inject = service.app.inject.bind(service.app);
const createAsync = async () => (await inject({ method: 'POST', url: '/create-async', payload: VALID })).json().task_id as string;
const terminal = (id: string) => untilTerminal(service.tasks, id);

interface SseEvent {
  id?: string;
  event: string;
  data: Record<string, unknown>;
}

/** Reads an SSE stream to its end, as a browser's EventSource would see it. */
async function readEvents(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string | null; events: SseEvent[] }> {
  await service.app.listen({ port: 0, host: '127.0.0.1' }).catch(() => undefined);
  const address = service.app.server.address() as { port: number };
  const res = await fetch(`http://127.0.0.1:${address.port}${url}`, { headers });
  const text = await res.text();
  const events = text
    .split('\n\n')
    .filter((block) => block.trim() && !block.startsWith(':'))
    .map((block) => {
      const fields = Object.fromEntries(block.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]));
      return { id: fields.id, event: fields.event ?? 'message', data: JSON.parse(fields.data ?? '{}') as Record<string, unknown> };
    });
  return { status: res.status, type: res.headers.get('content-type'), events };
}

t.test('SSE: past and live events, then the final state; many watchers, one run; Last-Event-ID resumes', async (t) => {
  let runs = 0;
  t.teardown(service.tasks.onRun(() => runs++));

  const id = await createAsync();
  const watchers = await Promise.all([1, 2, 3].map(() => readEvents(`/tasks/${id}/events`)));
  const [first] = watchers;
  t.equal(first!.status, 200);
  t.match(first!.type, /^text\/event-stream/);
  const kinds = first!.events.map((e) => e.event);
  t.equal(kinds[0], 'status', 'starts with the status history');
  t.ok(kinds.includes('step_start') && kinds.includes('step_end'), 'playbook steps are streamed');
  const step = first!.events.find((e) => e.event === 'step_start' && e.data.name === 'Launch one instance per task');
  t.match(step?.data, { step: Number, of: Number, at: String }, 'a step says which of how many');
  const stepEnd = first!.events.find((e) => e.event === 'step_end' && e.data.name === 'Launch one instance per task');
  t.match(stepEnd?.data, { status: 'ok', duration_ms: Number }, 'for this task the launch step ends when its instance runs');
  t.same(
    first!.events.filter((e) => e.event === 'status').map((e) => e.data.status),
    ['queued', 'running', 'succeeded'],
    'every status change, from the start',
  );
  t.match(first!.events[0]!.data, { task_id: id, action: 'create', status: 'queued', created_at: String }, 'a status event holds the task document');
  const end = first!.events.at(-1)!;
  t.equal(end.event, 'end', 'the stream ends with the final task');
  t.match(end.data, { task_id: id, status: 'succeeded', ip: String });
  for (const other of watchers.slice(1)) t.same(other.events.map((e) => e.id), first!.events.map((e) => e.id), 'every watcher saw the same events');
  await eventually(() => runs > 0, 30_000, 'the run to end'); // the task's result came before its run ended
  t.equal(runs, 1, 'three watchers, one playbook run');

  const middle = first!.events[Math.floor(first!.events.length / 2)]!;
  const resumed = await readEvents(`/tasks/${id}/events`, { 'last-event-id': middle.id! });
  t.ok(resumed.events.every((e) => e.event === 'end' || Number(e.id) > Number(middle.id)), 'only events after Last-Event-ID');
  t.equal(resumed.events.at(-1)!.event, 'end');

  const unknown = await inject({ method: 'GET', url: '/tasks/01a21c5a-0000-7000-8000-000000000000/events' });
  t.equal(unknown.statusCode, 404);
});

/** Reads an SSE stream until `enough` says so, then stops reading. */
async function readUntil(url: string, enough: (events: SseEvent[]) => boolean, headers: Record<string, string> = {}) {
  await service.app.listen({ port: 0, host: '127.0.0.1' }).catch(() => undefined);
  const address = service.app.server.address() as { port: number };
  const controller = new AbortController();
  const res = await fetch(`http://127.0.0.1:${address.port}${url}`, { headers, signal: controller.signal });
  const events: SseEvent[] = [];
  let buffer = '';
  const decoder = new TextDecoder();
  const reader = res.body!.getReader();
  while (!enough(events)) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (!block.trim() || block.startsWith(':')) continue;
      const fields = Object.fromEntries(block.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]));
      events.push({ id: fields.id, event: fields.event ?? 'message', data: JSON.parse(fields.data ?? '{}') as Record<string, unknown> });
    }
  }
  controller.abort();
  return { status: res.status, events };
}

t.test('GET /events: every task\'s changes live, in order, resumable; /tasks says where to start', async (t) => {
  const listed = (await inject({ url: '/tasks?limit=1' })).json();
  t.type(listed.last_event_id, 'number', '/tasks says where the feed stood');
  const id = await createAsync();
  const feed = await readUntil(`/events?after=${listed.last_event_id}`, (events) =>
    events.some((e) => e.event === 'status' && e.data.task_id === id && e.data.status === 'succeeded'),
  );
  t.equal(feed.status, 200);
  t.match(feed.events[0], { event: 'ready', data: { after: listed.last_event_id } }, 'it says where it starts');
  const mine = feed.events.filter((e) => e.data.task_id === id);
  t.same(mine.filter((e) => e.event === 'status').map((e) => e.data.status), ['queued', 'running', 'succeeded'], 'the task appears when queued');
  t.ok(mine.some((e) => e.event === 'step_start' && typeof e.data.name === 'string'), 'progress too');
  const ids = feed.events.slice(1).map((e) => Number(e.id));
  t.same(ids, [...ids].sort((a, b) => a - b), 'in event order');
  t.ok(ids.every((n) => n > listed.last_event_id), 'only what came after the list');

  const middle = mine[Math.floor(mine.length / 2)]!;
  const resumed = await readUntil('/events', (events) => events.some((e) => e.id === mine.at(-1)!.id), { 'last-event-id': middle.id! });
  t.same(
    resumed.events.slice(1).filter((e) => e.data.task_id === id).map((e) => e.id),
    mine.filter((e) => Number(e.id) > Number(middle.id)).map((e) => e.id),
    'Last-Event-ID replays exactly what came after it',
  );

  const fresh = await readUntil('/events', (events) => events.length >= 1);
  t.match(fresh.events[0], { event: 'ready', data: { after: Number } }, 'without a position it starts now');
  t.ok((fresh.events[0]!.data.after as number) >= Number(mine.at(-1)!.id));
  t.equal((await inject({ url: '/events?after=x' })).statusCode, 400);
});

t.test('GET /tasks/<id> is the /status document; the log is there, pageable, and live while running', async (t) => {
  const id = await createAsync();
  let grew = false;
  let last = -1;
  // Until the log says it is complete: the task may succeed (its result reported early) while its run goes on.
  for (let complete = false; !complete; await new Promise((resolve) => setTimeout(resolve, 100))) {
    const res = await inject({ method: 'GET', url: `/tasks/${id}/log` });
    const length = Number(res.headers['x-log-length']);
    complete = res.headers['x-log-complete'] === 'true';
    if (last >= 0 && length > last && !complete) grew = true;
    last = length;
  }
  t.ok(grew, 'the log grew while the playbook ran');
  t.equal((await terminal(id)).status, 'succeeded');

  const [status, task] = await Promise.all([inject({ url: `/status/${id}` }), inject({ url: `/tasks/${id}` })]);
  t.same(task.json(), status.json());

  const log = await inject({ url: `/tasks/${id}/log` });
  t.equal(log.statusCode, 200);
  t.match(log.headers['content-type'], /^text\/plain/);
  t.equal(log.headers['x-log-complete'], 'true');
  t.match(log.body, /PLAY RECAP/);
  t.match(log.body, /Launch one instance per task/);
  t.notMatch(log.body, /\$6\$/, 'no password hash in the log');
  const offset = Number(log.headers['x-log-length']) - 20;
  const tail = await inject({ url: `/tasks/${id}/log?offset=${offset}` });
  t.equal(tail.body, log.body.slice(offset), '?offset returns only the rest');
});

t.test('GET /tasks: filters, newest first, cursor pages', async (t) => {
  const deletes: string[] = [];
  for (const ip of ['198.51.100.1', '198.51.100.2', '198.51.100.3']) {
    deletes.push((await inject({ url: `/delete-async/${ip}` })).json().task_id);
  }
  await Promise.all(deletes.map(terminal));

  const all = (await inject({ url: '/tasks?limit=500' })).json();
  const ids = all.tasks.map((task: { task_id: string }) => task.task_id);
  t.same(ids, [...ids].sort().reverse(), 'newest first');
  t.ok(ids.length >= 5);
  t.equal(all.next_cursor, null, 'one page holds them all');

  const byIp = (await inject({ url: '/tasks?ip=198.51.100.2' })).json();
  t.same(byIp.tasks.map((task: { task_id: string }) => task.task_id), [deletes[1]]);
  const failedDeletes = (await inject({ url: '/tasks?action=delete&status=failed' })).json();
  t.same(failedDeletes.tasks.map((task: { task_id: string }) => task.task_id).sort(), [...deletes].sort(), 'not-found deletes end failed');
  const creates = (await inject({ url: '/tasks?action=create&status=succeeded' })).json();
  t.ok(creates.tasks.length >= 2 && creates.tasks.every((task: { action: string }) => task.action === 'create'));

  // Times have millisecond resolution, so compare with what was stored rather than with the order of requests.
  const since = (await service.tasks.get(deletes[0]!))!.created_at;
  const after = (await inject({ url: `/tasks?created_after=${encodeURIComponent(since)}&limit=500` })).json();
  const expectedAfter = all.tasks.filter((task: { created_at: string }) => task.created_at > since).map((task: { task_id: string }) => task.task_id);
  t.same(after.tasks.map((task: { task_id: string }) => task.task_id), expectedAfter, 'created_after is exclusive');
  t.ok(expectedAfter.includes(deletes[2]) && !expectedAfter.includes(deletes[0]));
  const before = (await inject({ url: `/tasks?created_before=${encodeURIComponent(since)}&action=delete` })).json();
  t.same(before.tasks, [], 'no delete was created before the first one');

  const pages: string[] = [];
  let cursor: string | null = null;
  do {
    const page: { tasks: { task_id: string }[]; next_cursor: string | null } = (await inject({ url: `/tasks?limit=2${cursor ? `&cursor=${cursor}` : ''}` })).json();
    t.ok(page.tasks.length <= 2);
    pages.push(...page.tasks.map((task) => task.task_id));
    cursor = page.next_cursor;
  } while (cursor);
  t.same(pages, ids, 'paging with the cursor walks every task once, in order');

  for (const bad of ['status=done', 'limit=0', 'limit=501', 'ip=1.2.3', 'created_after=yesterday', 'created_after=2026-12-31T23:59:60Z', 'cursor=abc', 'colour=red']) {
    const res = await inject({ url: `/tasks?${bad}` });
    t.equal(res.statusCode, 400, bad);
    t.match(res.json(), { error: String });
  }
});
