// The operators' console in a real browser (Debian's Chromium through
// playwright-core) against the real service on the bundled local emulator,
// as `npm start` runs it: launch from the form and watch the task to its IP,
// the live list, terminate from the instances page, the phone layout, and the
// page's own headers. With UPDATE_SCREENSHOTS=1 it also writes docs/console.md's
// pictures (docs/screenshots/).
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Page } from 'playwright-core';
import { projectRoot } from '../src/config.js';
import { CONSOLE_CSP } from '../src/http/routes/console.js';
import { VALID, eventuallyAsync, liveInstanceIds, startService, untilTerminal } from './helpers/harness.js';
import {
  DESKTOP,
  PHONE,
  UPDATE_SCREENSHOTS,
  docScreenshot,
  ensureConsoleBuilt,
  launchBrowser,
  openConsole,
  screenshotOnFailure,
  serve,
  unexpected,
  until,
  type ConsolePage,
} from './helpers/browser.js';

ensureConsoleBuilt();
// No AWS_ENDPOINT_URL: the service starts its own emulator, as `npm start` does without credentials.
const service = await startService('', { AWS_ENDPOINT_URL: '', EC2_API_CLOUD: 'local' });
const endpoint = service.app.engine.cloud.endpointUrl!;
const base = await serve(service.app);
const browser = await launchBrowser();
t.teardown(async () => {
  await browser.close();
  await service.close();
});

const tasks = service.tasks;
const SLOW = 90_000;


/** Everything the page showed and asked for stayed on this origin, with no script error or CSP refusal. */
function clean(t: Test, c: ConsolePage, allowed: RegExp[] = []) {
  t.same(unexpected(c.problems, allowed), [], 'no console errors, exceptions or CSP violations');
  t.same(c.foreign, [], 'no request left the service’s origin');
}

/** The page is no wider than the window: nothing to scroll sideways. */
async function fitsWidth(page: Page): Promise<boolean> {
  return page.evaluate('document.documentElement.scrollWidth <= window.innerWidth');
}

t.test('the page, its assets and / are served with a strict CSP; unknown assets are 404', async (t) => {
  const root = await fetch(`${base}/`, { redirect: 'manual' });
  t.equal(root.status, 302);
  t.equal(root.headers.get('location'), '/ui');
  for (const path of ['/ui', '/ui/', '/ui/tasks', '/ui/tasks/01a21c5a-6dbb-7575-a344-8105e40c2f30', '/ui/instances', '/ui/launch']) {
    const page = await fetch(`${base}${path}`);
    t.equal(page.status, 200, path);
    t.match(page.headers.get('content-type'), /^text\/html/);
    t.equal(page.headers.get('content-security-policy'), CONSOLE_CSP, `${path}: CSP`);
  }
  t.match(CONSOLE_CSP, /script-src 'self'(;|$)/, 'scripts only from the service, none inline');
  t.notMatch(CONSOLE_CSP, /unsafe-inline|unsafe-eval|https?:/, 'no inline code, no other origin');
  const guide = fs.readFileSync(path.join(projectRoot, 'docs', 'console.md'), 'utf8');
  const documented = /\nContent-Security-Policy: ([^`]+?)\n```/.exec(guide)?.[1]?.replace(/\s+/g, ' ').trim();
  t.equal(documented, CONSOLE_CSP, 'docs/console.md shows the CSP the page is served with');
  const html = await (await fetch(`${base}/ui`)).text();
  t.notMatch(html, /<script>|\sstyle=|\son[a-z]+=/i, 'no inline script, style or handler in the page');
  const js = await fetch(`${base}/ui/assets/main.js`);
  t.equal(js.status, 200);
  t.match(js.headers.get('content-type'), /^text\/javascript/);
  t.equal(js.headers.get('x-content-type-options'), 'nosniff');
  // As a browser revalidates its copy (Cache-Control: max-age=0): fetch would otherwise add Cache-Control: no-cache,
  // which asks for the whole file again.
  const revalidate = { 'if-none-match': js.headers.get('etag')!, 'cache-control': 'max-age=0' };
  const again = await fetch(`${base}/ui/assets/main.js`, { headers: revalidate });
  t.equal(again.status, 304, 'assets are revalidated by ETag');
  t.equal((await fetch(`${base}/ui/assets/main.js`, { headers: { ...revalidate, 'if-none-match': '"another"' } })).status, 200, 'a changed file is sent again');
  for (const bad of ['../server.js', '..%2Fserver.js', 'pages/../../server.js', 'nope.js', 'index.html', '.hidden.js']) {
    const res = await fetch(`${base}/ui/assets/${bad}`);
    t.equal(res.status, 404, bad);
    t.match(await res.json(), { error: String }, `${bad}: the API's error shape`);
  }
  // Data becomes text nodes only; the CSP's Trusted Types would make these throw anyway.
  // Every script the page loads: the console's own, the client modules it shares with the CLI, and eventsource-parser.
  const dist = path.join(projectRoot, 'dist');
  const scripts = [
    ...fs.readdirSync(path.join(dist, 'console'), { recursive: true }).map(String).filter((f) => f.endsWith('.js')).map((f) => path.join(dist, 'console', f)),
    path.join(dist, 'api', 'vocabulary.js'),
    path.join(dist, 'api', 'lifecycle.js'),
    path.join(projectRoot, 'node_modules', 'eventsource-parser', 'dist', 'index.js'),
  ];
  for (const file of scripts) {
    t.notMatch(fs.readFileSync(file, 'utf8'), /\.(innerHTML|outerHTML)\s*=|\.insertAdjacentHTML\(|document\.write|\beval\(|new Function\(/, `${path.relative(projectRoot, file)}: no HTML sinks`);
  }
  for (const shared of ['/ui/api/vocabulary.js', '/ui/api/lifecycle.js', '/ui/assets/vendor/eventsource-parser.js']) {
    const res = await fetch(`${base}${shared}`);
    t.equal(res.status, 200, `${shared} is served`);
    t.match(res.headers.get('content-type'), /^text\/javascript/, `${shared}: a script`);
  }
  t.equal((await fetch(`${base}/ui/api/documents.js`)).status, 404, 'only the shared client modules are served from src/api');
  const docs = (await service.app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, unknown> };
  t.notOk(Object.keys(docs.paths).some((p) => p === '/' || p.startsWith('/ui')), 'the console is not part of the API document');
});

t.test('launch from the form, by keyboard; the task page follows it to succeeded with its IP', async (t) => {
  const c = await openConsole(browser, base);
  const { page } = c;
  screenshotOnFailure(t, page);
  const secret = 'Tr0ub4dor&3-console';

  await page.goto('/');
  t.match(page.url(), /\/ui$/, '/ redirects to the console');
  await until(page.locator('#where'), /Local EC2 emulator/);
  t.match(await page.locator('#where').textContent(), /nothing real is launched/, 'the banner says plainly that nothing real is launched');
  await until(page.locator('#live'), 'live');
  await until(page.locator('.list-state'), /No tasks yet/);
  t.equal(await page.title(), 'Tasks · ec2-api console');

  // Keyboard only: the skip link first, then the main navigation.
  await page.keyboard.press('Tab');
  t.equal(await page.evaluate('document.activeElement.textContent'), 'Skip to the page', 'the first Tab reaches the skip link');
  await page.keyboard.press('Enter');
  t.equal(await page.evaluate('document.activeElement.id'), 'main', 'Enter on it moves the focus to the page');
  t.match(page.url(), /\/ui#main$/, 'the skip link is a plain in-page link');
  t.equal(await page.evaluate("document.activeElement.tagName + ' ' + document.querySelectorAll('main h1').length"), 'MAIN 1', 'and the page is not redrawn');
  await page.getByRole('link', { name: 'Launch', exact: true }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Launch an instance' }).waitFor();
  t.equal(await page.evaluate('document.activeElement.tagName'), 'H1', 'after navigating, focus is on the new page’s heading');
  await until(page.locator('.launch-where'), /local EC2 emulator: nothing real is started/);

  const password = page.getByLabel('Password', { exact: true });
  t.equal(await password.getAttribute('type'), 'password', 'the password field never echoes');
  t.equal(await page.getByLabel('Username').getAttribute('autocomplete'), 'off');

  // Invalid input is caught at the field, named, and focused.
  await page.getByLabel('Username').focus();
  await page.keyboard.type('Root!');
  await page.keyboard.press('Enter');
  await until(page.locator('#username-error'), /lowercase letters/);
  t.equal(await page.getByLabel('Username').getAttribute('aria-invalid'), 'true');
  t.equal(await page.evaluate('document.activeElement.id'), 'username');
  // A refusal from the server lands on its field too (a system account).
  await page.getByLabel('Username').fill('');
  await page.keyboard.type('root');
  await page.keyboard.press('Tab');
  await page.keyboard.type(secret);
  await page.keyboard.press('Enter');
  await until(page.locator('#username-error'), /system account/);

  await page.getByLabel('Username').fill('');
  await page.keyboard.type('alice');
  await page.keyboard.press('Tab');
  t.equal(await page.evaluate('document.activeElement.id'), 'password', 'Tab goes from username to password');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/ui\/tasks\/[0-9a-f-]{36}$/);
  const id = page.url().split('/').pop()!;
  t.ok((await tasks.get(id)), 'the task exists');

  // Live: the progress names steps while it runs, then the end.
  await until(page.getByTestId('progress-text'), /Step \d+ of \d+: |Succeeded/, SLOW);
  if (UPDATE_SCREENSHOTS) {
    // For the README: a step in the middle, when this run passes through one in time.
    const middle = await until(page.getByTestId('progress-text'), /Step \d+ of \d+: /, 15_000).then(() => true, () => false);
    if (middle) await docScreenshot(page, 'task-running', { fullPage: true });
  }
  await until(page.getByTestId('task-status'), 'succeeded', SLOW);
  const task = await untilTerminal(tasks, id);
  t.equal(task.status, 'succeeded');
  await until(page.getByTestId('task-ip'), task.ip!);
  t.match(await page.getByTestId('progress-text').textContent(), `Succeeded: the instance runs at ${task.ip}`);
  t.match(await page.locator('.instance-card').textContent(), task.instance_id!, 'the instance it launched');
  const steps = page.locator('.waterfall .step');
  // Its result came the moment its instance ran, during the launch step: that is where its waterfall ends.
  const started = (await tasks.eventsSince(id, 0)).filter((e) => e.type === 'step_start').length;
  t.ok(started >= 1, `it went through ${started} step(s)`);
  t.equal(await steps.count(), started, 'every step it went through is in the waterfall');
  t.match(await page.locator('.waterfall').textContent(), /Launch one instance per task.*ok/s, 'the launch step, ended when its instance ran');
  await until(page.getByTestId('log-state'), /complete/);
  t.match(await page.getByTestId('log').textContent(), /PLAY RECAP/, 'the whole log once it ended');
  t.equal(await page.locator('.cancel-card').isVisible(), false, 'no Cancel once it has ended');
  await docScreenshot(page, 'task-succeeded', { fullPage: true });

  // The password went out once, in the POST body, and nowhere else.
  t.notOk(c.requests.some((url) => url.includes(secret) || url.includes(encodeURIComponent(secret))), 'never in a URL');
  const storage = (await page.evaluate('JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])')) as string;
  t.notMatch(storage, secret, 'never in browser storage');
  t.same(await c.context.cookies(), [], 'no cookies at all');
  t.notMatch(await page.content(), secret, 'gone from the page');

  await page.getByRole('link', { name: '← All tasks' }).click();
  const row = page.locator(`tr[data-task-id="${id}"]`);
  await until(row, 'succeeded');
  t.match(await row.textContent(), task.ip!, 'the list shows its IP');
  clean(t, c, [/status of 400/]); // the refused "root" above
  await c.close();
});

t.test('the task list is live: new tasks appear, progress moves, filters and pages', async (t) => {
  const c = await openConsole(browser, base);
  const { page } = c;
  screenshotOnFailure(t, page);
  await page.goto('/ui/tasks');
  await until(page.locator('#live'), 'live');
  await until(page.locator('.list-state'), /Newest first/);

  // Two creates and a delete that finds nothing, submitted by someone else (the API).
  const submit = async (request: { method: 'POST' | 'GET'; url: string; payload?: object }) => (await service.app.inject(request)).json().task_id as string;
  const first = await submit({ method: 'POST', url: '/instances', payload: VALID });
  const second = await submit({ method: 'POST', url: '/instances', payload: { username: 'second', password: 'suitepad' } });
  const missing = await submit({ method: 'GET', url: '/delete-async/198.51.100.7' });
  for (const id of [first, second, missing]) {
    const shown = await page.locator(`tr[data-task-id="${id}"]`).waitFor({ timeout: 5_000 }).then(() => true, () => false);
    t.ok(shown, `task ${id} appears without a reload`);
  }
  const ids = (await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-task-id')))) as string[];
  t.same(ids.slice(0, 3), [missing, second, first], 'newest first');
  const stepShown = await until(page.locator(`tr[data-task-id="${first}"]`), /Step \d+ of \d+: /, SLOW).then(() => true, () => false);
  t.ok(stepShown, 'a running task shows step k of n and the step’s name');
  await docScreenshot(page, 'tasks-live');
  await until(page.locator(`tr[data-task-id="${missing}"]`), 'failed', SLOW);
  t.match(await page.locator(`tr[data-task-id="${missing}"] .row-error`).textContent(), /198\.51\.100\.7|no managed instance|not found/i, 'a failed task shows its error in the row');
  await until(page.locator(`tr[data-task-id="${first}"]`), 'succeeded', SLOW);
  await until(page.locator(`tr[data-task-id="${second}"]`), 'succeeded', SLOW);

  // Filters: by status and by action; the URL keeps them; focus stays on the control.
  await page.getByLabel('Status').focus();
  await page.getByLabel('Status').selectOption('failed');
  await page.locator(`tr[data-task-id="${first}"]`).waitFor({ state: 'detached' });
  t.match(page.url(), /status=failed/);
  t.equal(await page.evaluate('document.activeElement.id'), 'filter-status', 'the focus stays on the filter');
  const failedRows = await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-status')));
  t.ok(failedRows.length >= 1 && failedRows.every((s) => s === 'failed'), 'only failed tasks');
  await page.getByLabel('Status').selectOption('');
  await page.getByLabel('Action').selectOption('create');
  await page.locator(`tr[data-task-id="${missing}"]`).waitFor({ state: 'detached' });
  const actions = await page.locator('tbody tr .task-link').allTextContents();
  t.ok(actions.every((a) => a === 'Create instance'), 'only creates');
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await page.locator(`tr[data-task-id="${missing}"]`).waitFor();

  // Paging on the API's cursor, two tasks a page (?limit=2): Older until the end, then back to the newest.
  const all = ((await service.app.inject({ url: '/tasks?limit=500' })).json().tasks as { task_id: string }[]).map((task) => task.task_id);
  t.ok(all.length >= 4, `${all.length} tasks in all`);
  await page.goto('/ui/tasks?limit=2');
  await until(page.locator('.list-state'), /Newest first/);
  const rowIds = async () => (await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-task-id')))) as string[];
  const walked = await rowIds();
  const older = page.getByRole('link', { name: 'Older tasks →' });
  while (await older.count()) {
    const first = (await rowIds())[0];
    await older.click();
    await page.locator(`tr[data-task-id="${first}"]`).waitFor({ state: 'detached' });
    await until(page.locator('.list-state'), /Older tasks|No older tasks/);
    const ids = await rowIds();
    t.ok(ids.length <= 2, 'pages of two');
    walked.push(...ids);
    if (!ids.length) break;
  }
  t.same(walked, all, 'the pages walk every task once, newest first');
  t.match(page.url(), /limit=2/, 'the page size stays in the URL');
  await page.getByRole('link', { name: '← Newest tasks' }).click();
  await page.locator(`tr[data-task-id="${missing}"]`).waitFor();
  clean(t, c);
  await c.close();
});

t.test('the live feed survives a dropped connection: it resumes with Last-Event-ID and misses nothing', async (t) => {
  const c = await openConsole(browser, base);
  const { page } = c;
  screenshotOnFailure(t, page);
  const feeds: Promise<string>[] = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname !== '/events') return;
    // Where each connection to the feed asked to start: Last-Event-ID, else ?after=.
    feeds.push(request.allHeaders().then((headers) => headers['last-event-id'] ?? url.searchParams.get('after') ?? 'now'));
  });
  await page.goto('/ui/tasks');
  await until(page.locator('#live'), 'live');
  await until(page.locator('.list-state'), /Newest first/);
  const listedAt = (await service.app.inject({ url: '/tasks?limit=1' })).json().last_event_id as number;
  // Every connection cut at once, as a proxy or a network blip would; a task is made while the page is away.
  service.app.server.closeAllConnections();
  const id = (await service.app.inject({ url: '/delete-async/198.51.100.9' })).json().task_id as string;
  await until(page.locator(`tr[data-task-id="${id}"]`), 'failed', 60_000);
  const starts = await Promise.all(feeds);
  t.ok(starts.length >= 2, `the page connected to the feed again (${starts.length} connections)`);
  const again = starts.slice(1);
  t.ok(again.every((start) => /^\d+$/.test(start) && Number(start) <= listedAt), `every reconnection resumed from where the page was (${again.join(', ')}), never from "now"`);
  await until(page.locator('#live'), 'live');
  clean(t, c, [/net::ERR_/]); // the cut stream
  await c.close();
});

t.test('instances page: Terminate asks first, then shows the delete task live until the instance is gone', async (t) => {
  const created = (await service.app.inject({ method: 'POST', url: '/instances?wait=true', payload: { username: 'doomed', password: 'suitepad' } })).json();
  t.equal(created.status, 'succeeded');
  const c = await openConsole(browser, base);
  const { page } = c;
  screenshotOnFailure(t, page);
  await page.goto('/ui/instances');
  const row = page.locator(`tr[data-instance-id="${created.instance_id}"]`);
  await row.waitFor({ timeout: 30_000 });
  await page.getByRole('button', { name: 'Refresh' }).waitFor({ timeout: 30_000 });
  t.match(await row.textContent(), created.ip, 'its public IP');
  t.match(await row.textContent(), 'running');
  t.match(await row.textContent(), `…${created.task_id.slice(-8)}`, 'the task that launched it');
  await docScreenshot(page, 'instances');

  const terminate = row.getByRole('button', { name: `Terminate ${created.instance_id} (${created.ip})` });
  await terminate.click();
  const dialog = page.getByRole('dialog', { name: 'Terminate this instance?' });
  await dialog.waitFor();
  t.match(await dialog.textContent(), created.instance_id);
  t.equal(await page.evaluate('document.activeElement.textContent'), 'Keep it', 'the safe answer has the focus');
  const deletes = async () => (await service.app.inject({ url: '/tasks?action=delete' })).json().tasks.length as number;
  const deletesBefore = await deletes();
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  t.equal(await deletes(), deletesBefore, 'Escape: nothing was deleted');

  await terminate.click();
  await dialog.getByRole('button', { name: 'Terminate it' }).click();
  const deletion = page.locator('.deletion').first();
  await until(deletion, /Step \d+ of \d+|Waiting|terminated/);
  const deleteId = (await deletion.getAttribute('data-task-id'))!;
  t.match(deleteId, /^[0-9a-f-]{36}$/, 'the delete task is shown');
  await until(deletion, 'terminated.', SLOW);
  const gone = await row.waitFor({ state: 'detached', timeout: 30_000 }).then(() => true, () => false);
  t.ok(gone, 'the instance leaves the list');
  t.same(await liveInstanceIds(endpoint, created.task_id), [], 'EC2 agrees: it is terminated');
  t.equal((await untilTerminal(tasks, deleteId)).status, 'succeeded');
  // Leave once the page has stopped reading EC2: a list playbook is not stopped when the service closes.
  await page.getByRole('button', { name: 'Refresh' }).waitFor({ timeout: 30_000 });
  clean(t, c);
  await c.close();
});

t.test("instances page: the owner, a countdown to the expiry, and Extend moves it; the task page shows both", async (t) => {
  const created = (
    await service.app.inject({ method: 'POST', url: '/instances?wait=true', payload: { username: 'mortal', password: 'suitepad', ttl: 3600 } })
  ).json();
  t.equal(created.status, 'succeeded');
  const c = await openConsole(browser, base);
  const { page } = c;
  screenshotOnFailure(t, page);
  await page.goto('/ui/instances');
  const row = page.locator(`tr[data-instance-id="${created.instance_id}"]`);
  await row.waitFor({ timeout: 30_000 });
  t.match(await row.textContent(), 'default', 'who launched it');
  await until(row, /in (59 min|1 h 00 min)/);
  const countdown = row.locator('[data-expires]');
  const first = await countdown.textContent();
  t.ok(await eventuallyAsync(async () => (await countdown.textContent()) !== first, 10_000, 'the countdown to move'), 'it counts down');

  await row.getByRole('combobox', { name: `New lifetime of ${created.instance_id}` }).selectOption({ label: '1 day' });
  await row.getByRole('button', { name: 'Extend' }).click();
  await until(row, /in 2[34] h \d\d min/);
  const stored = Date.parse((await tasks.get(created.task_id))!.expires_at!);
  t.ok(Math.abs(stored - Date.now() - 86_400_000) < 60_000, 'the service holds the new expiry: a day from now');

  await page.goto(`/ui/tasks/${created.task_id}`);
  const facts = page.locator('dl.facts');
  await until(facts, /Asked by\s*default/);
  await until(facts, /Expires\s*in 2[34] h/);
  await page.goto('/ui/instances');
  await row.waitFor({ timeout: 30_000 });
  await page.getByRole('button', { name: 'Refresh' }).waitFor({ timeout: 30_000 });
  clean(t, c);
  await c.close();
  await service.app.inject({ method: 'DELETE', url: `/instances/${created.ip}?wait=true` });
});

t.test('phone width: every page fits, tables become cards, the menu and actions stay reachable', async (t) => {
  const c = await openConsole(browser, base, PHONE);
  const { page } = c;
  screenshotOnFailure(t, page);
  await page.goto('/ui/tasks');
  await until(page.locator('.list-state'), /Newest first/);
  t.ok(await fitsWidth(page), 'task list: nothing to scroll sideways');
  t.equal(await page.locator('thead').first().isVisible(), true, 'the header row is only visually hidden');
  const label = await page.evaluate("getComputedStyle(document.querySelector('tbody tr td:nth-child(3)'), '::before').content");
  t.equal(label, '"Progress"', 'each value is labelled in the card');
  await docScreenshot(page, 'phone-tasks');

  const id = (await page.locator('tbody tr').first().getAttribute('data-task-id'))!;
  await page.locator('tbody tr').first().getByRole('link').click();
  await until(page.getByTestId('log-state'), /complete/);
  t.ok(await fitsWidth(page), 'task page fits');
  t.ok(await page.locator('.waterfall .track').first().isVisible(), 'the waterfall is there');
  await docScreenshot(page, 'phone-task', { fullPage: true });
  t.match(page.url(), id);

  await page.getByRole('link', { name: 'Launch', exact: true }).click();
  await page.getByLabel('Username').waitFor();
  t.ok(await fitsWidth(page), 'launch form fits');
  await page.getByRole('link', { name: 'Instances', exact: true }).click();
  await until(page.locator('.list-state'), /No instances|\d+ instances?,/, 30_000);
  t.ok(await fitsWidth(page), 'instances page fits');
  clean(t, c);
  await c.close();

  const wide = await openConsole(browser, base, DESKTOP);
  await wide.page.goto('/ui/launch');
  await wide.page.getByLabel('Username').fill('alice');
  await docScreenshot(wide.page, 'launch');
  await wide.close();
});
