// The caches that reuse an answer for a while (the instance listing, the
// readiness probe's ansible check) age it on the monotonic clock: a wall
// clock set back (NTP, an operator, a VM resumed) does not keep an answer
// for as long as it went back.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Readiness } from '../src/http/readiness.js';
import { startMoto, startService, sleep, tempDir } from './helpers/harness.js';

const moto = await startMoto();
t.teardown(() => moto.stop());

/** Sets the wall clock an hour back for the rest of the test. */
function setClockBack(t: { teardown(fn: () => void): void }): void {
  const realNow = Date.now;
  const offset = 3_600_000;
  Date.now = () => realNow() - offset;
  t.teardown(() => {
    Date.now = realNow;
  });
}

t.test('a listing is reused for 3 s of monotonic time, whatever the wall clock does', async (t) => {
  const service = await startService(moto.url);
  t.teardown(() => service.close());
  const listings: string[] = [];
  service.tasks.onRun((report) => {
    if (report.playbook === 'list') listings.push(report.outcome);
  });
  t.equal((await service.app.inject({ method: 'GET', url: '/instances' })).statusCode, 200);
  t.same(listings, ['ok'], 'one listing run');
  t.equal((await service.app.inject({ method: 'GET', url: '/instances' })).statusCode, 200);
  t.equal(listings.length, 1, 'reused while fresh');

  setClockBack(t);
  await sleep(3_200);
  t.equal((await service.app.inject({ method: 'GET', url: '/instances' })).statusCode, 200);
  t.equal(listings.length, 2, 'read again once 3 s have passed, though the wall clock went an hour back');
});

t.test('the readiness probe asks ansible again once its answer is old, whatever the wall clock does', async (t) => {
  const service = await startService(moto.url, { EC2_API_PAUSED: '1' });
  t.teardown(() => service.close());
  const dir = tempDir();
  const calls = path.join(dir, 'calls');
  const fake = path.join(dir, 'ansible-playbook');
  fs.writeFileSync(fake, `#!/bin/sh\necho x >> '${calls}'\necho 'ansible-playbook [core 9.8.7]'\n`, { mode: 0o755 });
  const readiness = new Readiness({ tasks: service.tasks, ec2Endpoint: moto.url, ansiblePlaybook: fake, ansibleCacheSeconds: 1 });
  const runs = () => fs.readFileSync(calls, 'utf8').trim().split('\n').length;
  await Promise.all([readiness.check(), readiness.check()]);
  t.equal(runs(), 1, 'one answer for checks while it is fresh');

  setClockBack(t);
  await sleep(1_200);
  t.match((await readiness.check()).checks.ansible, { ok: true });
  t.equal(runs(), 2, 'asked again once its age passed, though the wall clock went an hour back');
});
