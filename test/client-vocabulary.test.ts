// The vocabulary the two clients share (src/api/vocabulary.ts, generated from
// /openapi.json, and src/api/lifecycle.ts, written after docs/API.md) says
// what the service does: the statuses it ends tasks in, the login rules it
// applies, and the events its streams send, read here with eventsource-parser
// as both clients read them.
import { createParser } from 'eventsource-parser';
import t from 'tap';
import { isTaskEvent, isTerminal, streamEvent, TERMINAL_STATUSES, type StreamEvent } from '../src/api/lifecycle.js';
import { PASSWORD, STATUSES, USERNAME } from '../src/api/vocabulary.js';
import { TASK_STATUSES, TERMINAL } from '../src/tasks/model.js';
import { startService, VALID } from './helpers/harness.js';

// Paused: tasks are stored and never run, so nothing reaches the (unused) endpoint.
const service = await startService('http://127.0.0.1:9', { EC2_API_PAUSED: '1' });
await service.app.listen({ port: 0, host: '127.0.0.1' });
const address = service.app.server.address();
const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
t.teardown(() => service.close());

const create = (body: object) =>
  service.app.inject({ method: 'POST', url: '/create-async', headers: { 'content-type': 'application/json' }, payload: body });

/** Reads a stream's events until `enough` says so; returns them, by the clients' names. */
async function readStream(url: string, enough: (events: StreamEvent[]) => boolean, whileOpen?: () => Promise<void>): Promise<{ names: string[]; events: StreamEvent[] }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 60_000);
  const names: string[] = [];
  const events: StreamEvent[] = [];
  const parser = createParser({
    onEvent(message) {
      names.push(message.event ?? 'message');
      const event = streamEvent(message);
      if (event) events.push(event);
    },
  });
  try {
    const response = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let started = false;
    while (!enough(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
      if (!started && events.length > 0 && whileOpen) {
        started = true;
        await whileOpen();
      }
    }
    await reader.cancel().catch(() => undefined);
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return { names, events };
}

t.test('the statuses a client treats as final are those the service ends tasks in', async (t) => {
  t.same([...STATUSES], [...TASK_STATUSES], 'the generated statuses are the service\'s');
  t.same([...TERMINAL_STATUSES].sort(), [...TERMINAL].sort());
  for (const status of STATUSES) t.equal(isTerminal(status), TERMINAL.has(status), status);
});

t.test('a username or password the clients would refuse, the service refuses; one they accept, it accepts', async (t) => {
  const name = new RegExp(USERNAME.pattern);
  const printable = new RegExp(PASSWORD.pattern, 'u');
  const names = ['suitepad', '_svc', 'a-b_c9', 'x'.repeat(32), 'x'.repeat(33), '9lives', 'Suitepad', 'a b', '-dash', 'ünï'];
  for (const username of names) {
    const clientAccepts = name.test(username) && username.length <= USERNAME.maxLength;
    const res = await create({ username, password: VALID.password });
    t.equal(res.statusCode, clientAccepts ? 202 : 400, `${JSON.stringify(username)}: ${res.body}`);
  }
  const passwords = ['x'.repeat(PASSWORD.minLength - 1), 'x'.repeat(PASSWORD.minLength), 'y'.repeat(PASSWORD.maxLength), 'y'.repeat(PASSWORD.maxLength + 1), 'tab\there-ok?', 'pässwörd'];
  for (const password of passwords) {
    const clientAccepts = printable.test(password) && password.length >= PASSWORD.minLength && password.length <= PASSWORD.maxLength;
    const res = await create({ username: 'suitepad', password });
    t.equal(res.statusCode, clientAccepts ? 202 : 400, `a password of ${password.length} characters${password.includes('\t') ? ' with a tab' : ''}: ${res.body}`);
  }
});

t.test('GET /events starts with ready, then tells of a new task with a status event', async (t) => {
  let id = '';
  const { names, events } = await readStream(
    `${base}/events`,
    (seen) => seen.some((e) => e.type === 'status' && e.data.task_id === id),
    async () => {
      id = (await create(VALID)).json().task_id;
    },
  );
  t.equal(names[0], 'ready', 'the first event');
  t.equal(events[0]?.type, 'ready');
  const status = events.find((e) => e.type === 'status' && e.data.task_id === id);
  t.ok(status && isTaskEvent(status), 'the new task\'s status event is a task event');
  t.equal(status?.type === 'status' ? status.data.status : null, 'queued');
  t.same(names.filter((n) => !['ready', 'status', 'step_start', 'step_end'].includes(n)), [], 'no event the clients do not know');
});

t.test('GET /tasks/<id>/events tells the task\'s history and ends with end, whose task has a final status', async (t) => {
  const id = (await create(VALID)).json().task_id as string;
  const cancel = await service.app.inject({ method: 'POST', url: `/tasks/${id}/cancel` });
  t.equal(cancel.statusCode, 200, cancel.body);
  const { names, events } = await readStream(`${base}/tasks/${id}/events`, (seen) => seen.some((e) => e.type === 'end'));
  t.same(
    names.filter((n) => streamEvent({ event: n, data: '{}' }) === null),
    [],
    'every event name is one the clients know',
  );
  t.same(events.filter((e) => e.type === 'status').map((e) => (e.type === 'status' ? e.data.status : null)), ['queued', 'canceled']);
  const end = events.at(-1);
  t.equal(end?.type, 'end', 'the last event');
  t.ok(end?.type === 'end' && isTerminal(end.data.status), 'its task has ended');
  t.equal(streamEvent({ event: 'something_new', data: '{}' }), null, 'a name a newer server might add is passed over');
});
