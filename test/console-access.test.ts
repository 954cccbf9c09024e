// The console with API_TOKENS set, in a real browser: the token prompt (a
// wrong token says so, a right one opens the console and is kept for the
// tab's session only, sent as a bearer header on every call, the live feed
// included); canceling a running create from its page (its instance is
// terminated); and markup in a step's name and a task's error shown as text,
// never run. The create playbook is test/fixtures/console-playbooks/create.yml.
import path from 'node:path';
import t, { type Test } from 'tap';
import { projectRoot } from '../src/config.js';
import { liveInstanceIds, startService, untilTerminal } from './helpers/harness.js';
import { docScreenshot, ensureConsoleBuilt, launchBrowser, openConsole, screenshotOnFailure, serve, unexpected, until, type ConsolePage } from './helpers/browser.js';

const TOKEN = 'console-test-token-0123456789abcdef';

ensureConsoleBuilt();
// The bundled emulator, as `npm start` runs without credentials.
const service = await startService('', {
  AWS_ENDPOINT_URL: '',
  EC2_API_CLOUD: 'local',
  API_TOKENS: TOKEN,
  EC2_API_PLAYBOOK_DIR: path.join(projectRoot, 'test', 'fixtures', 'console-playbooks'),
});
const endpoint = service.app.engine.cloud.endpointUrl!;
const base = await serve(service.app);
const browser = await launchBrowser();
t.teardown(async () => {
  await browser.close();
  await service.close();
});

const tasks = service.tasks;
const bearer = { authorization: `Bearer ${TOKEN}` };

/** A console page that has been given the token through the prompt. */
async function signedIn(c: ConsolePage, url = '/ui') {
  await c.page.goto(url);
  await c.page.getByLabel('API token', { exact: true }).fill(TOKEN);
  await c.page.getByRole('button', { name: 'Use this token' }).click();
  await c.page.getByLabel('API token', { exact: true }).waitFor({ state: 'detached' });
  // The feed refused before the token came: it is live again, whatever the page.
  await until(c.page.locator('#live'), 'live');
}

function clean(t: Test, c: ConsolePage, allowed: RegExp[] = []) {
  t.same(unexpected(c.problems, allowed), [], 'no console errors, exceptions or CSP violations');
  t.same(c.foreign, [], 'no request left the service’s origin');
}

const submitCreate = async (username: string) => {
  const res = await service.app.inject({ method: 'POST', url: '/instances', headers: bearer, payload: { username, password: 'suitepad' } });
  if (res.statusCode !== 202) throw new Error(`POST /instances answered ${res.statusCode}: ${res.body}`);
  return res.json().task_id as string;
};

t.test('token prompt: a wrong token says so; the right one opens the console, for this tab’s session only', async (t) => {
  const c = await openConsole(browser, base);
  const { page } = c;
  screenshotOnFailure(t, page);
  const withAuth: string[] = [];
  page.on('request', (request) => {
    if (request.headers().authorization === `Bearer ${TOKEN}`) withAuth.push(new URL(request.url()).pathname);
  });

  await page.goto('/ui');
  await page.getByRole('heading', { name: 'This service needs an API token' }).waitFor();
  t.match(await page.locator('#where').textContent(), /Local EC2 emulator/, '/healthz needs no token: the banner is there');
  const field = page.getByLabel('API token', { exact: true });
  t.equal(await field.getAttribute('type'), 'password', 'the token is not shown');
  t.equal(await page.evaluate('document.activeElement.id'), 'token', 'the prompt has the focus');

  await field.fill('not-the-token-at-all-0000');
  await page.keyboard.press('Enter');
  await until(page.locator('#token-error'), /That token was refused: the bearer token is not valid/);
  t.equal(await field.getAttribute('aria-invalid'), 'true');
  t.equal(await page.evaluate('sessionStorage.length'), 0, 'a refused token is not kept');
  await docScreenshot(page, 'token-prompt');

  await field.fill(TOKEN);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Tasks' }).waitFor();
  await until(page.locator('#live'), 'live');
  t.equal(await page.evaluate("sessionStorage.getItem('ec2-api.token')"), TOKEN, 'kept in sessionStorage');
  t.equal(await page.evaluate('localStorage.length'), 0, 'not in localStorage');
  t.same(await c.context.cookies(), [], 'never a cookie');
  t.notOk(c.requests.some((url) => url.includes(TOKEN)), 'never in a URL');
  t.ok(withAuth.includes('/events'), 'the live feed carries the bearer header (read with fetch, not EventSource)');
  t.ok(withAuth.includes('/tasks'), 'so does every API call');

  // A reload keeps it (same tab); a new session does not.
  await page.reload();
  await page.getByRole('heading', { name: 'Tasks' }).waitFor();
  await until(page.locator('#live'), 'live');
  const other = await openConsole(browser, base);
  await other.page.goto('/ui/instances');
  const asked = await other.page.getByRole('heading', { name: 'This service needs an API token' }).waitFor().then(() => true, () => false);
  await other.close();
  t.ok(asked, 'another browser session asks again');

  await page.getByRole('button', { name: 'Forget token' }).click();
  await page.getByRole('heading', { name: 'This service needs an API token' }).waitFor();
  t.equal(await page.evaluate('sessionStorage.length'), 0, 'Forget token removes it');
  // The 401s the prompt was shown for are logged by the browser as failed loads.
  clean(t, c, [/status of 401/]);
  await c.close();
});

t.test('cancel a running create from its page: the instance it launched is terminated', async (t) => {
  const id = await submitCreate('hangs');
  const c = await openConsole(browser, base);
  const { page } = c;
  screenshotOnFailure(t, page);
  await signedIn(c, `/ui/tasks/${id}`);
  // The fixture launches like the real playbook, then hangs in its second play.
  await until(page.getByTestId('progress-text'), /Wait far longer than the test/, 90_000);
  const [launched] = await liveInstanceIds(endpoint, id);
  t.ok(launched, 'it has launched an instance');
  const card = page.locator('.cancel-card');
  t.match(await card.textContent(), /the instance it launched \(if it got that far\) will be terminated/, 'it says what cancel will do');
  t.match(await page.locator('.waterfall .step-running').textContent(), /running…/, 'the step it hangs in is running, in words');

  await card.getByRole('button', { name: 'Cancel this task…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Cancel this task?' });
  await dialog.waitFor();
  t.match(await dialog.textContent(), /will be terminated/);
  await dialog.getByRole('button', { name: 'Cancel the task' }).click();
  await until(page.getByTestId('task-status'), 'canceled', 90_000);
  const task = await untilTerminal(tasks, id);
  t.equal(task.status, 'canceled');
  t.equal(task.instance_state, 'terminated');
  await until(page.locator('.instance-card'), 'terminated');
  t.match(await page.locator('.instance-card').textContent(), launched!, 'the page names the terminated instance');
  t.same(await liveInstanceIds(endpoint, id), [], 'EC2 agrees: nothing is left running');
  t.match(await page.getByTestId('task-error').textContent(), 'canceled by request');
  t.equal(await card.getByRole('button').count(), 0, 'no Cancel button once it has ended');
  await until(page.getByTestId('log-state'), /complete/);
  t.match(await page.getByTestId('log').textContent(), /cleanup after cancel/, 'the log includes the clean-up');
  // Launch, the hang, and the clean-up's steps: the longest one stands out.
  t.ok((await page.locator('.waterfall .step').count()) >= 3, 'the waterfall holds the run and the clean-up');
  t.equal(await page.locator('.waterfall .step.slowest').count(), 1, 'the slowest step stands out');
  t.match(await page.locator('.waterfall .step.slowest .tag').textContent(), 'slowest', '…in words, not only by colour');
  clean(t, c, [/status of 401/]); // before the token was given
  await c.close();
});

t.test('markup in a step name and in an error is shown as text, never run', async (t) => {
  const id = await submitCreate('xss_probe');
  const task = await untilTerminal(tasks, id);
  t.equal(task.status, 'failed');
  t.match(task.error, '<script>', 'the error holds markup');

  const c = await openConsole(browser, base);
  const { page } = c;
  screenshotOnFailure(t, page);
  await signedIn(c, '/ui/tasks');
  const row = page.locator(`tr[data-task-id="${id}"]`);
  await until(row, 'failed');
  t.match(await row.locator('.row-error').textContent(), `<script>window.__pwned = 'error'</script><img src="x"`, 'the list shows the error as typed');
  await docScreenshot(page, 'tasks-failed');

  await row.getByRole('link').click();
  await until(page.getByTestId('task-status'), 'failed');
  t.match(await page.getByTestId('task-error').textContent(), `<script>window.__pwned = 'error'</script><img src="x" onerror=`, 'the task page shows the error as text');
  t.match(await page.locator('.waterfall .step-failed .step-name').textContent(), "Probe <script>window.__pwned = 'step name'</script><b>bold?</b>", 'the step name as text');
  t.match(await page.getByTestId('progress-text').textContent(), 'Failed at step 1 of 1: Probe <script>');
  await until(page.getByTestId('log-state'), /complete/);
  t.match(await page.getByTestId('log').textContent(), '<script>', 'the log as text');

  t.equal(await page.evaluate('window.__pwned'), undefined, 'no injected script ran');
  t.equal(await page.locator('main img, main script, main b').count(), 0, 'no element was made from the markup');
  clean(t, c, [/status of 401/]); // before the token was given
  await c.close();
});
