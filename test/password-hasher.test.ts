// PasswordHasher (src/login/hasher.ts): hashing and verifying on worker
// threads, off the event loop; sharing only what is in flight; failures
// rejected, never hung, never carrying the password; close() stopping every thread.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import t, { type Test } from 'tap';
import { HashError, PasswordHasher } from '../src/login/hasher.js';
import { verifySha512Crypt } from '../src/login/sha512-crypt.js';
import { KERNEL_CANDIDATES } from '../src/login/wasm.js';

// The WebAssembly kernel comes from `npm run build`; run directly with tap on a fresh clone, build it here.
if (!KERNEL_CANDIDATES.some((url) => fs.existsSync(url))) {
  execFileSync(process.execPath, [new URL('../src/login/kernel/build.mjs', import.meta.url).pathname], { stdio: 'inherit' });
}

/** The threads of this process (Linux): worker threads are OS threads. */
const threadCount = () => fs.readdirSync('/proc/self/task').length;

/** A worker module written for one test: `body` is the task function's body (task in `task`). */
function fakeWorker(t: Test, body: string, top = ''): URL {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ec2-api-hasher-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'worker.mjs');
  fs.writeFileSync(file, `${top}\nexport default function run(task) {\n${body}\n}\n`);
  return new URL(`file://${file}`);
}

/** Everything an error can show: message, stack, inspect(), JSON. */
const everything = (error: unknown) => `${String(error)}\n${(error as Error)?.stack}\n${inspect(error, { depth: 5 })}\n${JSON.stringify(error)}`;

t.test('importing and constructing start nothing; the first hash starts the pool', async (t) => {
  await fs.promises.readFile(new URL(import.meta.url)); // libuv's threads, if not yet there
  const before = threadCount();
  const hasher = new PasswordHasher({ threads: 2 });
  t.equal(threadCount(), before, 'no thread after new PasswordHasher()');
  const hash = await hasher.hash('alice', 'suitepad-1');
  t.ok(verifySha512Crypt('suitepad-1', hash));
  t.ok(threadCount() >= before + 2, 'two worker threads while open');
  await hasher.close();
  t.ok(threadCount() <= before, 'close() leaves no thread running');
  await t.rejects(hasher.hash('alice', 'suitepad-1'), { code: 'ERR_PASSWORD_HASHER_CLOSED' }, 'hash() after close() rejects');
  await t.rejects(hasher.verify('suitepad-1', hash), { code: 'ERR_PASSWORD_HASHER_CLOSED' });
  await hasher.close(); // twice is fine
  await new PasswordHasher().close(); // never started is fine
});

/** The longest gap between ticks of a 1 ms interval while `work` runs. */
async function longestGap(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 1);
  try {
    await work();
    return Math.max(worst, performance.now() - last);
  } finally {
    clearInterval(timer);
  }
}

/** CPU ms of this process's main thread (Linux: /proc/self/task/<pid>/stat, in clock ticks of 10 ms). */
function mainThreadCpuMs(): number {
  const stat = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, at 100 ticks a second
}

t.test('hashes run off the main thread: it spends a small part of the CPU they take', async (t) => {
  const hasher = new PasswordHasher({ threads: 2 });
  t.teardown(() => hasher.close());
  await hasher.hash('warm', 'up-the-pool');
  const main0 = mainThreadCpuMs();
  const all0 = process.cpuUsage();
  await Promise.all(Array.from({ length: 200 }, (_, i) => hasher.hash(`user${i}`, `password-${i}`)));
  const main = mainThreadCpuMs() - main0;
  const { user, system } = process.cpuUsage(all0);
  const all = (user + system) / 1000;
  t.comment(`200 hashes: ${all.toFixed(0)} ms of CPU in all, ${main} ms of it on the main thread`);
  t.ok(main < all / 4, 'the main thread did not do the hashing');
});

t.test('the event loop keeps ticking while 50 hashes run', async (t) => {
  const hasher = new PasswordHasher({ threads: 1 });
  t.teardown(() => hasher.close());
  await Promise.all(Array.from({ length: 50 }, (_, i) => hasher.hash('warm', `up-the-pool-${i}`))); // JIT, both threads
  // A hash is ~2 ms of CPU: 50 of them on the event loop would stall it for
  // ≥ 100 ms at once. The machine is shared with other test runs, whose load
  // alone stretches the gaps between ticks: each attempt also measures an
  // idle stretch as long, and passes when the longest gap while hashing is
  // ≤ 5 ms or ≤ the idle one + 5 ms. Best of three attempts.
  let passed = false;
  for (let attempt = 0; attempt < 3 && !passed; attempt++) {
    let took = 0;
    const hashing = await longestGap(async () => {
      const started = performance.now();
      const hashes = await Promise.all(Array.from({ length: 50 }, (_, i) => hasher.hash(`user${i}`, `password-${attempt}-${i}`)));
      took = performance.now() - started;
      t.equal(hashes.length, 50);
    });
    const idle = await longestGap(() => new Promise((resolve) => setTimeout(resolve, took)));
    t.comment(`50 hashes in ${took.toFixed(0)} ms: longest gap ${hashing.toFixed(1)} ms (idle: ${idle.toFixed(1)} ms)`);
    passed = hashing <= 5 || hashing <= idle + 5;
  }
  t.ok(passed, 'no gap between 1 ms ticks beyond a few ms');
});

t.test('verify: right password yes, wrong no, bad hash no (not thrown)', async (t) => {
  const hasher = new PasswordHasher();
  t.teardown(() => hasher.close());
  const hash = await hasher.hash('bob', 'pässwörd ✓ 128');
  t.equal(await hasher.verify('pässwörd ✓ 128', hash), true);
  t.equal(await hasher.verify('pässwörd ✓ 12', hash), false);
  t.equal(await hasher.verify('', hash), false);
  for (const bad of ['', 'not a hash', hash.slice(0, -2), hash.replace('$6$', '$5$'), undefined, null, 7]) {
    t.equal(await hasher.verify('pässwörd ✓ 128', bad as string), false, `bad hash ${JSON.stringify(bad)}`);
  }
  // The spec's vector with explicit rounds, verified in a worker.
  t.equal(
    await hasher.verify(
      'we have a short salt string but not a short password',
      '$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0',
    ),
    true,
  );
  t.equal(await hasher.implementation(), 'wasm', 'the workers run the WebAssembly kernel');
});

t.test('100 hashes at once, all correct, each with its own salt', async (t) => {
  const hasher = new PasswordHasher({ threads: 2 });
  t.teardown(() => hasher.close());
  const passwords = Array.from({ length: 100 }, (_, i) => `password ${i} ${'é'.repeat(i % 40)}`);
  const hashes = await Promise.all(passwords.map((password, i) => hasher.hash(`user${i}`, password)));
  t.ok(hashes.every((hash, i) => verifySha512Crypt(passwords[i]!, hash)), 'every hash verifies');
  t.equal(new Set(hashes.map((hash) => hash.split('$')[2])).size, 100, '100 different salts');
});

t.test('identical requests share a hash only while it is in flight', async (t) => {
  const hasher = new PasswordHasher();
  t.teardown(() => hasher.close());
  const together = await Promise.all(Array.from({ length: 5 }, () => hasher.hash('carol', 'same-password')));
  t.equal(new Set(together).size, 1, 'five at once: one hash');
  t.ok(verifySha512Crypt('same-password', together[0]!));
  const [mine, theirs] = await Promise.all([hasher.hash('carol', 'same-password'), hasher.hash('dave', 'same-password')]);
  t.not(mine, theirs, 'another username never shares');
  const [a, b] = await Promise.all([hasher.hash('ab', 'c-password'), hasher.hash('a', 'bc-password')]);
  t.not(a, b, 'the username/password boundary is part of the key');
  const later = await hasher.hash('carol', 'same-password');
  t.not(later, together[0], 'once answered, nothing is reused: a new salt');
  t.ok(verifySha512Crypt('same-password', later));
});

t.test('a worker that throws rejects, with the password nowhere in the error', async (t) => {
  const password = 'Secret-Password-42';
  const hasher = new PasswordHasher({
    workerUrl: fakeWorker(t, "throw new Error('cannot hash ' + new TextDecoder().decode(task.password));"),
  });
  t.teardown(() => hasher.close());
  const error = await hasher.hash('erin', password).catch((e: unknown) => e);
  t.type(error, HashError);
  t.equal((error as HashError).code, 'ERR_PASSWORD_HASH_FAILED');
  t.notMatch(everything(error), password);
  const verifyError = await hasher.verify(password, '$6$saltsalt$' + 'a'.repeat(86)).catch((e: unknown) => e);
  t.equal((verifyError as HashError).code, 'ERR_PASSWORD_HASH_FAILED');
  t.notMatch(everything(verifyError), password);
});

t.test('a worker that dies mid-hash rejects (no hang, no crash), and the pool goes on', async (t) => {
  const hasher = new PasswordHasher({
    workerUrl: fakeWorker(t, "if (task.op === 'hash' && new TextDecoder().decode(task.password) === 'die') process.exit(3); return 'ok';"),
  });
  t.teardown(() => hasher.close());
  const [dies, ...others] = await Promise.allSettled([hasher.hash('frank', 'die'), ...[1, 2, 3].map((i) => hasher.hash(`user${i}`, 'live'))]);
  t.equal(dies.status, 'rejected');
  t.equal(((dies as PromiseRejectedResult).reason as HashError).code, 'ERR_PASSWORD_HASH_FAILED');
  t.match((dies as PromiseRejectedResult).reason.message, /worker exited with code 3/);
  t.same(others.map((r) => r.status === 'fulfilled' && r.value), ['ok', 'ok', 'ok'], 'the hashes queued behind it are done by a new worker');
  t.equal(await hasher.hash('frank', 'live'), 'ok');
});

t.test('a worker that never answers is stopped after timeoutMs', async (t) => {
  const hasher = new PasswordHasher({ timeoutMs: 300, workerUrl: fakeWorker(t, 'for (;;) {}') });
  t.teardown(() => hasher.close());
  const started = performance.now();
  const error = await hasher.hash('gina', 'hangs-forever').catch((e: unknown) => e);
  t.equal((error as HashError).code, 'ERR_PASSWORD_HASH_TIMEOUT');
  t.ok(performance.now() - started < 10_000, 'rejected, not hung');
});

t.test('a worker module that cannot load rejects instead of hanging', async (t) => {
  const hasher = new PasswordHasher({ timeoutMs: 10_000, workerUrl: fakeWorker(t, 'return 1;', "throw new Error('broken module');") });
  t.teardown(() => hasher.close());
  const error = await hasher.hash('hank', 'any-password').catch((e: unknown) => e);
  t.type(error, HashError);
  t.notMatch(everything(error), 'any-password');
  const missing = new PasswordHasher({ timeoutMs: 10_000, workerUrl: new URL('file:///nonexistent/worker.mjs') });
  t.teardown(() => missing.close());
  t.type(await missing.hash('hank', 'any-password').catch((e: unknown) => e), HashError);
});

t.test('non-string input is refused without being echoed', async (t) => {
  const hasher = new PasswordHasher();
  t.teardown(() => hasher.close());
  const error = await hasher.hash('ivan', 12345678 as unknown as string).catch((e: unknown) => e);
  t.equal((error as HashError).code, 'ERR_PASSWORD_HASH_FAILED');
  t.notMatch(everything(error), '12345678');
  await t.rejects(hasher.verify(87654321 as unknown as string, '$6$x$' + 'a'.repeat(86)), { code: 'ERR_PASSWORD_HASH_FAILED' });
});

t.test('maxQueue: beyond it, hashes are refused at once', async (t) => {
  const hasher = new PasswordHasher({ maxQueue: 2 });
  t.teardown(() => hasher.close());
  const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => hasher.hash(`u${i}`, `queued-password-${i}`)));
  const refused = results.filter((r) => r.status === 'rejected');
  t.ok(refused.length > 0, `${refused.length} of 10 refused`);
  t.ok(refused.every((r) => (r as PromiseRejectedResult).reason.code === 'ERR_PASSWORD_HASH_QUEUE_FULL'));
  t.ok(results.some((r) => r.status === 'fulfilled'), 'the first ones are hashed');
});

t.test('close() lets what was asked for finish, refuses the rest, and leaves no thread', async (t) => {
  await fs.promises.readFile(new URL(import.meta.url));
  const before = threadCount();
  const hasher = new PasswordHasher({ threads: 2 });
  await hasher.implementation(); // threads started (slow under the tests' TypeScript loader): close() gives 5 s to finish
  const passwords = Array.from({ length: 50 }, (_, i) => `closing-password-${i}`);
  const pending = Promise.allSettled(passwords.map((password, i) => hasher.hash(`u${i}`, password)));
  const closed = hasher.close();
  await t.rejects(hasher.hash('late', 'late-password'), { code: 'ERR_PASSWORD_HASHER_CLOSED' }, 'a hash after close() is refused');
  await closed;
  const hashes = (await pending).map((result) => (result.status === 'fulfilled' ? result.value : String(result.reason)));
  t.ok(hashes.every((hash, i) => verifySha512Crypt(passwords[i]!, hash)), 'the 50 asked for before close() are hashed');
  t.ok(threadCount() <= before, 'no thread left');
});

t.test('close() stops a hash that runs too long rather than wait for ever', async (t) => {
  const hasher = new PasswordHasher({ timeoutMs: 60_000, workerUrl: fakeWorker(t, 'for (;;) {}') });
  const stuck = hasher.hash('kim', 'stuck-password').catch((e: unknown) => e);
  await new Promise((resolve) => setTimeout(resolve, 200));
  const started = performance.now();
  await hasher.close();
  t.ok(performance.now() - started < 15_000, 'close() returned');
  t.equal(((await stuck) as HashError).code, 'ERR_PASSWORD_HASHER_CLOSED');
});
