// Web pages open in the operator's browser cannot use the service in its
// default mode (loopback, no tokens), in Debian's Chromium against the real
// service and moto: a page of another origin tries to launch
// (fetch, a form) and to terminate (an <img> on the compat GET deletes); a
// page that reached the service by DNS rebinding (its own name mapped to
// 127.0.0.1) tries the same from "its own" origin. Nothing is queued and the
// instance still runs. The service's own console keeps working.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { CROSS_SITE, UNKNOWN_HOST } from '../src/http/browser-guard.js';
import { eventually, liveInstanceIds, startMoto, startService, untilTerminal } from './helpers/harness.js';
import { ensureConsoleBuilt, launchBrowser, openConsole, screenshotOnFailure, serve } from './helpers/browser.js';

/** What reached the service, and what it answered. */
interface Seen {
  method: string;
  url: string;
  status: number;
  site: string | undefined;
  origin: string | undefined;
}
const seen: Seen[] = [];

ensureConsoleBuilt();
// The default mode: loopback, no tokens. Moto is started here rather than by the service (its start may take long on a busy machine).
const moto = await startMoto();
const service = await startService(
  moto.url,
  {},
  {
    beforeReady: (app) =>
      app.addHook('onResponse', async (request, reply) => {
        seen.push({ method: request.method, url: request.url, status: reply.statusCode, site: request.headers['sec-fetch-site'] as string | undefined, origin: request.headers.origin });
      }),
  },
);
const endpoint = moto.url;
const base = await serve(service.app);
const port = new URL(base).port;
// rebind.test resolves to the service, as an attacker's name does once its DNS answer has switched to 127.0.0.1.
const browser = await launchBrowser([`--host-resolver-rules=MAP rebind.test 127.0.0.1`]);

// The instance the pages try to terminate, launched the way curl would.
const launched = await service.app.inject({ method: 'POST', url: '/instances?wait=true', payload: { username: 'victim', password: 'suitepad' } });
const instance = launched.json() as { task_id: string; ip: string; status: string };
const taskCount = () => (service.db.prepare('SELECT count(*) AS n FROM tasks').get() as { n: number }).n;

/** The page another site serves: two launches by fetch, one by a form, two terminations by <img>. */
const attackPage = (target: string, ip: string) => `<!doctype html>
<title>a page of another site</title>
<img id="a" src="${target}/delete-async/${ip}" alt="">
<img id="b" src="${target}/delete/${ip}" alt="">
<iframe name="sink"></iframe>
<form id="f" method="POST" action="${target}/create-async" enctype="text/plain" target="sink">
  <input name='{"username": "eve", "password": "password1", "x": "' value='"}'>
</form>
<script>
  const body = JSON.stringify({ username: 'eve', password: 'password1' });
  fetch('${target}/create-async', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'application/json' }, body }).catch(() => {});
  fetch('${target}/instances', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'application/json' }, body }).catch(() => {});
  document.getElementById('f').submit();
</script>`;

const attacker = http.createServer((_request, response) => {
  response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  response.end(attackPage(base, instance.ip));
});
await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
const attackerPort = (attacker.address() as AddressInfo).port;

t.teardown(async () => {
  await browser.close();
  await new Promise((resolve) => attacker.close(resolve));
  await service.close();
  await moto.stop();
});

/** The five requests of one visit to the attack page, once all have been answered. */
async function visit(origin: string): Promise<Seen[]> {
  const from = seen.length;
  const c = await openConsole(browser, origin);
  // Not until "load": an <img> of the sync GET /delete would hold that while a delete ran.
  await c.page.goto('/', { waitUntil: 'domcontentloaded' });
  const attempts = await eventually(() => {
    const mine = seen.slice(from).filter((s) => /^\/(create-async|instances|delete(-async)?\/)/.test(s.url));
    return mine.length >= 5 ? mine : undefined;
  }, 30_000, 'the page\'s five requests to reach the service');
  await c.close();
  return attempts;
}

t.test('the instance to protect runs', async (t) => {
  t.equal(instance.status, 'succeeded', JSON.stringify(instance));
  t.ok((await liveInstanceIds(endpoint, instance.task_id)).length === 1, 'EC2 has it running');
  t.equal(taskCount(), 1);
});

for (const [what, origin, site] of [
  ['another site (localhost, the service being 127.0.0.1)', `http://localhost:${attackerPort}`, 'cross-site'],
  ['another port of the same host (same-site, not same-origin)', `http://127.0.0.1:${attackerPort}`, 'same-site'],
] as const) {
  t.test(`a page of ${what} launches nothing and terminates nothing`, async (t) => {
    const attempts = await visit(origin);
    t.same(
      attempts.map((a) => `${a.method} ${a.url.replace(instance.ip, '<ip>')}`).sort(),
      ['GET /delete-async/<ip>', 'GET /delete/<ip>', 'POST /create-async', 'POST /create-async', 'POST /instances'],
      'every attempt reached the service',
    );
    for (const attempt of attempts) {
      t.equal(attempt.status, 403, `${attempt.method} ${attempt.url} was refused`);
      t.equal(attempt.site, site, `the browser marked it ${site}`);
    }
    t.equal(taskCount(), 1, 'nothing was queued');
    t.equal((await liveInstanceIds(endpoint, instance.task_id)).length, 1, 'the instance still runs');
  });
}

t.test('a page that reached the service by DNS rebinding gets 403 for everything but the open routes', async (t) => {
  const c = await openConsole(browser, `http://rebind.test:${port}`);
  screenshotOnFailure(t, c.page);
  await c.page.goto('/nothing-here');
  // Same-origin to the browser: the cross-site rule cannot see it, the Host rule does.
  const answers = (await c.page.evaluate(`(async () => {
    const json = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'eve', password: 'password1' }) };
    const answers = {};
    for (const [name, url, init] of [
      ['create', '/create-async', json],
      ['delete', '/delete-async/${instance.ip}', {}],
      ['status', '/status/${instance.task_id}', {}],
      ['tasks', '/tasks', {}],
      ['healthz', '/healthz', {}],
    ]) {
      const response = await fetch(url, init);
      answers[name] = { status: response.status, body: await response.json() };
    }
    return answers;
  })()`)) as Record<string, { status: number; body: { error?: string } }>;
  for (const name of ['create', 'delete', 'status', 'tasks']) {
    t.equal(answers[name]!.status, 403, `${name}: 403`);
    t.equal(answers[name]!.body.error, UNKNOWN_HOST, `${name}: the sentence`);
  }
  t.notMatch(JSON.stringify(answers), instance.ip, 'the page never saw the instance\'s IP');
  t.equal(answers.healthz!.status, 200, '/healthz holds nothing secret and answers');
  // Chromium sends no Sec-Fetch-Site to a plain-HTTP name that is not loopback, and an Origin equal to Host.
  const create = seen.findLast((s) => s.url === '/create-async');
  t.same(
    { site: create?.site, origin: create?.origin },
    { site: undefined, origin: `http://rebind.test:${port}` },
    'the launch looked same-origin to the cross-site rule: only the Host rule stops it',
  );
  t.equal(taskCount(), 1, 'nothing was queued');
  t.equal((await liveInstanceIds(endpoint, instance.task_id)).length, 1, 'the instance still runs');
  await c.close();
});

t.test('the service\'s own console still launches (same-origin)', async (t) => {
  const c = await openConsole(browser, base);
  const { page } = c;
  screenshotOnFailure(t, page);
  await page.goto('/ui/launch');
  await page.getByLabel('Username').fill('carol');
  await page.getByLabel('Password', { exact: true }).fill('suitepad-carol');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/ui\/tasks\/[0-9a-f-]{36}$/);
  const id = page.url().split('/').pop()!;
  const post = seen.findLast((s) => s.method === 'POST');
  t.equal(post?.site, 'same-origin', 'the console\'s launch was a same-origin request');
  t.ok(post && post.status >= 200 && post.status < 300, `and was accepted (${post?.status})`);
  t.equal((await untilTerminal(service.tasks, id)).status, 'succeeded', 'the launch ran');
  t.equal(taskCount(), 2);
  await c.close();
});

t.test('the refusals say what to do', async (t) => {
  t.match(CROSS_SITE, /console at \/ui .* CLI, or curl/);
  t.match(UNKNOWN_HOST, /EC2_API_ALLOWED_HOSTS .* API_TOKENS/);
});
