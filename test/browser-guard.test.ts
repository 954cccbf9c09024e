// What a web page in the operator's browser may not do (docs/API.md, Access),
// over HTTP with the headers a browser sends: a DNS-rebinding page names the
// service by its own host; a page of another site is marked by Sec-Fetch-Site
// or Origin. Each refusal is a 403 with a sentence, and nothing is queued.
// The service is paused, so a task that got through would stay in the table.
import t from 'tap';
import { CROSS_SITE, UNKNOWN_HOST } from '../src/http/browser-guard.js';
import { startService, VALID, type TestService } from './helpers/harness.js';

const ENDPOINT = 'http://127.0.0.1:9'; // never contacted: the service is paused
const TOKEN = 'guard-test-token-0123456789abcdef';
const IP = '54.1.2.3';

const services: TestService[] = [];
t.teardown(async () => {
  for (const service of services) await service.close();
});

async function service(env: Record<string, string> = {}): Promise<TestService> {
  const started = await startService(ENDPOINT, { EC2_API_PAUSED: '1', ...env });
  services.push(started);
  return started;
}

const taskCount = (s: TestService) => (s.db.prepare('SELECT count(*) AS n FROM tasks').get() as { n: number }).n;

type Request = { method: 'GET' | 'POST' | 'DELETE'; url: string; payload?: object };
const CREATE_ASYNC: Request = { method: 'POST', url: '/create-async', payload: VALID };
const CHANGES: Request[] = [
  CREATE_ASYNC,
  { method: 'POST', url: '/create', payload: VALID },
  { method: 'GET', url: `/delete-async/${IP}` },
  { method: 'GET', url: `/delete/${IP}` },
  { method: 'POST', url: '/instances', payload: VALID },
  { method: 'DELETE', url: `/instances/${IP}` },
];

t.test('without tokens: a Host that is not the service\'s own (DNS rebinding) is refused', async (t) => {
  const s = await service();
  for (const request of CHANGES) {
    const res = await s.app.inject({ ...request, headers: { host: 'evil.example:5000' } });
    t.equal(res.statusCode, 403, `${request.method} ${request.url} with Host evil.example`);
    t.equal(res.json().error, UNKNOWN_HOST, 'a sentence that says what to do');
  }
  t.equal(taskCount(s), 0, 'nothing was queued');

  // A task the operator queued from curl: a rebinding page cannot read it (its IP would lead to the instance).
  const queued = await s.app.inject({ ...CREATE_ASYNC, headers: { host: '127.0.0.1:5000' } });
  t.equal(queued.statusCode, 202, 'curl on 127.0.0.1 queues');
  const id = queued.json().task_id as string;
  for (const url of [`/status/${id}`, `/tasks/${id}`, '/tasks', `/tasks/${id}/log`, '/instances', '/openapi.json']) {
    const res = await s.app.inject({ url, headers: { host: 'evil.example:5000' } });
    t.equal(res.statusCode, 403, `GET ${url} with Host evil.example`);
  }
  const cancel = await s.app.inject({ method: 'POST', url: `/tasks/${id}/cancel`, headers: { host: 'evil.example' } });
  t.equal(cancel.statusCode, 403, 'cancel with Host evil.example');
  t.equal((await s.tasks.get(id))!.status, 'queued', 'the task is still queued');
  t.equal(taskCount(s), 1, 'and is the only one');

  // The open routes hold nothing secret and answer any Host (a probe may name a pod's address).
  t.equal((await s.app.inject({ url: '/healthz', headers: { host: '10.1.2.3:5000' } })).statusCode, 200, '/healthz answers any Host');
});

t.test('without tokens: the loopback names and addresses, HOST and EC2_API_ALLOWED_HOSTS are accepted', async (t) => {
  const s = await service({ HOST: '192.168.7.7', ALLOW_UNAUTHENTICATED: '1', EC2_API_ALLOWED_HOSTS: 'ec2.example.com, Proxy.Example.org' });
  const good = ['localhost', 'localhost:5000', 'LOCALHOST:5000', '127.0.0.1', '127.0.0.1:5000', '127.9.8.7:80', '[::1]', '[::1]:5000', '192.168.7.7:5000', 'ec2.example.com', 'ec2.example.com:443', 'proxy.example.org'];
  for (const host of good) {
    const res = await s.app.inject({ url: '/tasks', headers: { host } });
    t.equal(res.statusCode, 200, `Host ${host}`);
  }
  const bad = ['evil.example', 'localhost.evil.example', '127.0.0.1.evil.example', 'example.com', '192.168.7.8:5000', 'not a host'];
  for (const host of bad) {
    const res = await s.app.inject({ url: '/tasks', headers: { host } });
    t.equal(res.statusCode, 403, `Host ${host}`);
  }
  const created = await s.app.inject({ ...CREATE_ASYNC, headers: { host: 'ec2.example.com' } });
  t.equal(created.statusCode, 202, 'a create through the reverse proxy\'s name is queued');
});

t.test('with tokens any Host is accepted (a page cannot know a token)', async (t) => {
  const s = await service({ API_TOKENS: TOKEN });
  const res = await s.app.inject({ ...CREATE_ASYNC, headers: { host: 'ec2.example.com', authorization: `Bearer ${TOKEN}` } });
  t.equal(res.statusCode, 202);
  t.equal(taskCount(s), 1);
});

/** The headers browsers send from another site's page, and from the service's own. */
const FOREIGN: Record<string, Record<string, string>> = {
  'Sec-Fetch-Site: cross-site': { 'sec-fetch-site': 'cross-site' },
  'Sec-Fetch-Site: same-site (another port of the same host)': { 'sec-fetch-site': 'same-site', origin: 'http://localhost:8888' },
  'Origin of another host, no Sec-Fetch-Site (an older browser)': { origin: 'http://evil.example' },
  'Origin of another port, no Sec-Fetch-Site': { origin: 'http://localhost:8888' },
  'Origin: null (a sandboxed frame)': { origin: 'null' },
};
const OWN: Record<string, Record<string, string>> = {
  'no browser header (curl, the CLI)': {},
  'Sec-Fetch-Site: same-origin (the console)': { 'sec-fetch-site': 'same-origin', origin: 'http://localhost' },
  'Sec-Fetch-Site: none (typed in the address bar)': { 'sec-fetch-site': 'none' },
  'Origin of the service itself, no Sec-Fetch-Site': { origin: 'http://localhost' },
  'Sec-Fetch-Site: same-origin behind a proxy that rewrites Host': { 'sec-fetch-site': 'same-origin', origin: 'https://ec2.example.com' },
};

for (const tokens of [false, true]) {
  t.test(`${tokens ? 'with' : 'without'} tokens: a request from another site's page changes nothing`, async (t) => {
    const s = await service(tokens ? { API_TOKENS: TOKEN } : {});
    const auth = tokens ? { authorization: `Bearer ${TOKEN}` } : {};
    const queued = await s.app.inject({ ...CREATE_ASYNC, headers: { host: 'localhost', ...auth } });
    t.equal(queued.statusCode, 202);
    const id = queued.json().task_id as string;
    const all = [...CHANGES, { method: 'POST', url: `/tasks/${id}/cancel` } as Request];
    for (const [what, headers] of Object.entries(FOREIGN)) {
      for (const request of all) {
        const res = await s.app.inject({ ...request, headers: { host: 'localhost', ...auth, ...headers } });
        t.equal(res.statusCode, 403, `${request.method} ${request.url}, ${what}`);
        t.equal(res.json().error, CROSS_SITE);
      }
    }
    t.equal(taskCount(s), 1, 'nothing more was queued');
    t.equal((await s.tasks.get(id))!.status, 'queued', 'the task was not canceled');

    // Reads from another site are not refused: the browser does not let that page read the answer.
    const read = await s.app.inject({ url: `/status/${id}`, headers: { host: 'localhost', ...auth, 'sec-fetch-site': 'cross-site' } });
    t.equal(read.statusCode, 200, 'a cross-site GET /status is answered (unreadable to the page without CORS)');

    let count = 1;
    for (const [what, headers] of Object.entries(OWN)) {
      const res = await s.app.inject({ method: 'GET', url: `/delete-async/${IP}`, headers: { host: 'localhost', ...auth, ...headers } });
      t.equal(res.statusCode, 202, `GET /delete-async, ${what}`);
      t.equal(taskCount(s), ++count, 'queued');
    }
  });
}
