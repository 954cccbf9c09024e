// The service's EC2 call budget (src/ansible/pacer.ts) on a clock the test
// moves, its configuration, and its Unix socket (src/ansible/pacer-server.ts)
// as a module process talks to it.
import fs from 'node:fs';
import net from 'node:net';
import t from 'tap';
import { BETA, DECREASE_WINDOW_S, INCREASE, MIN_RATE, Pacer, SEND_SLACK_S, type PacingLimits } from '../src/ansible/pacer.js';
import { answer, startPacerServer } from '../src/ansible/pacer-server.js';
import { ConfigError, loadConfig } from '../src/config.js';

const EC2: PacingLimits = loadConfig({}).pacing;
const KEY = { endpoint: 'http://127.0.0.1:5001', region: 'us-east-1', account: 'abc123' };

/** A pacer on a clock that only moves when the test says so (seconds). */
function pacerAt(limits = EC2) {
  const clock = { now: 100 };
  return { pacer: new Pacer(limits, () => clock.now), clock };
}

const close = (a: number, b: number) => Math.abs(a - b) < 1e-9;

t.test('the defaults are EC2\'s documented buckets, and raised limits are configurable', async (t) => {
  t.same(EC2, {
    run_instances: { capacity: 5, refillPerSecond: 2 },
    terminate_instances: { capacity: 100, refillPerSecond: 5 },
    mutating: { capacity: 50, refillPerSecond: 5 },
    describe: { capacity: 100, refillPerSecond: 20 },
  });
  const raised = loadConfig({ EC2_API_RATE_RUN_INSTANCES: '20/ 7.5', EC2_API_RATE_DESCRIBE: ' 200/40 ' }).pacing;
  t.same(raised.run_instances, { capacity: 20, refillPerSecond: 7.5 });
  t.same(raised.describe, { capacity: 200, refillPerSecond: 40 });
  t.same(raised.terminate_instances, EC2.terminate_instances, 'the others keep their default');
  for (const bad of ['5', '5/0', '0/2', 'five/2', '5/2/1', '-5/2']) {
    t.throws(() => loadConfig({ EC2_API_RATE_RUN_INSTANCES: bad }), ConfigError, `"${bad}" is refused`);
  }
  t.throws(() => loadConfig({ EC2_API_RATE_MUTATING: 'x' }), /EC2_API_RATE_MUTATING must be "capacity\/refill per second".*"50\/5"/);
});

t.test('a full bucket lets its capacity through at once, then one call per 1/rate s, in the order they came', async (t) => {
  const { pacer } = pacerAt();
  const waits = Array.from({ length: 9 }, () => pacer.take(KEY, 'run_instances'));
  t.same(waits.slice(0, 5), [0, 0, 0, 0, 0], 'the first 5 go at once');
  // The 6th waits for one token at 2/s (0.5 s), the 7th for two (1 s), …
  for (let i = 5; i < 9; i++) t.ok(close(waits[i]!, (i - 4) * 0.5 + SEND_SLACK_S), `call ${i + 1} waits ${(i - 4) * 0.5} s (+ slack)`);
  const [bucket] = pacer.snapshot();
  t.match(bucket, { kind: 'run_instances', capacity: 5, tokens: -4, rate: 2, configuredRate: 2, calls: 9, throttled: 0, ...KEY });
});

t.test('tokens refill at the rate, never beyond the capacity', async (t) => {
  const { pacer, clock } = pacerAt();
  for (let i = 0; i < 5; i++) pacer.take(KEY, 'run_instances');
  clock.now += 1;
  t.ok(close(pacer.snapshot()[0]!.tokens, 2), '2 tokens after 1 s');
  clock.now += 60;
  t.equal(pacer.snapshot()[0]!.tokens, 5, 'full, not 122');
  t.equal(pacer.take(KEY, 'run_instances'), 0);
});

t.test('kinds, Regions, endpoints and accounts each have their own bucket', async (t) => {
  const { pacer } = pacerAt();
  for (let i = 0; i < 5; i++) pacer.take(KEY, 'run_instances');
  t.ok(pacer.take(KEY, 'run_instances') > 0, 'RunInstances is empty');
  t.equal(pacer.take(KEY, 'terminate_instances'), 0, 'TerminateInstances is not');
  t.equal(pacer.take(KEY, 'describe'), 0);
  t.equal(pacer.take(KEY, 'mutating'), 0);
  t.equal(pacer.take({ ...KEY, region: 'eu-west-1' }, 'run_instances'), 0, 'another Region is not');
  t.equal(pacer.take({ ...KEY, account: 'def456' }, 'run_instances'), 0, 'another account is not');
  t.equal(pacer.take({ ...KEY, endpoint: 'https://ec2.us-east-1.amazonaws.com' }, 'run_instances'), 0, 'another endpoint is not');
  t.equal(pacer.snapshot().length, 7);
});

t.test('a throttled call lowers the rate by BETA and empties the bucket; the rate comes back additively', async (t) => {
  const { pacer, clock } = pacerAt();
  t.equal(pacer.take(KEY, 'run_instances'), 0);
  pacer.throttled(KEY, 'run_instances');
  let [bucket] = pacer.snapshot();
  t.ok(close(bucket!.rate, 2 * BETA), `rate ${2 * BETA}/s`);
  t.equal(bucket!.tokens, 0, 'EC2 said the bucket is empty: ours is too');
  t.equal(bucket!.throttled, 1);
  t.ok(close(pacer.take(KEY, 'run_instances'), 1 / (2 * BETA) + SEND_SLACK_S), 'the next call waits at the lower rate');

  pacer.throttled(KEY, 'run_instances');
  t.ok(close(pacer.snapshot()[0]!.rate, 2 * BETA), `a second throttle within ${DECREASE_WINDOW_S} s does not lower it again`);
  t.equal(pacer.snapshot()[0]!.throttled, 2, 'but is counted');

  clock.now += 1;
  t.ok(close(pacer.snapshot()[0]!.rate, 2 * BETA + 2 * INCREASE), `+${INCREASE * 100} % of the configured rate per second`);
  clock.now += 10;
  t.equal(pacer.snapshot()[0]!.rate, 2, 'back to the configured rate, never above');
});

t.test('repeated throttles stop at the minimum rate', async (t) => {
  const { pacer, clock } = pacerAt();
  for (let i = 0; i < 20; i++) {
    pacer.throttled(KEY, 'run_instances');
    clock.now += DECREASE_WINDOW_S;
  }
  const rate = pacer.snapshot()[0]!.rate;
  t.ok(rate >= MIN_RATE && rate < MIN_RATE + 2 * INCREASE * DECREASE_WINDOW_S + 1e-9, `about ${MIN_RATE}/s, got ${rate}`);
});

t.test('the socket protocol: take, throttled, and clear refusals of bad requests', async (t) => {
  const { pacer } = pacerAt();
  const take = (extra: object = {}) => JSON.stringify({ op: 'take', kind: 'run_instances', ...KEY, ...extra });
  t.same(answer(pacer, take()), { wait: 0 });
  t.same(answer(pacer, take({ n: 4 })), { wait: 0 });
  t.match(answer(pacer, take()), { wait: 0.5 + SEND_SLACK_S });
  t.same(answer(pacer, JSON.stringify({ op: 'throttled', kind: 'run_instances', ...KEY })), { ok: true });
  t.equal(pacer.snapshot()[0]!.throttled, 1);
  t.match(answer(pacer, 'not json'), { error: /one line of JSON/ });
  t.match(answer(pacer, '[1]'), { error: /JSON object/ });
  t.match(answer(pacer, take({ kind: 'launch' })), { error: /kind must be one of run_instances/ });
  t.match(answer(pacer, take({ region: 5 })), { error: /region must be a string/ });
  t.match(answer(pacer, take({ account: 'x'.repeat(513) })), { error: /account must be a string of at most 512/ });
  t.match(answer(pacer, take({ n: 0 })), { error: /n must be a whole number/ });
  t.match(answer(pacer, take({ op: 'give' })), { error: /op must be take or throttled/ });
  t.equal(pacer.snapshot()[0]!.calls, 6, 'refused requests took nothing');
});

t.test('the socket: private, shared by every connection, gone after close', async (t) => {
  const server = await startPacerServer(new Pacer(EC2));
  const dir = server.socketPath.replace(/\/[^/]+$/, '');
  t.equal(fs.statSync(dir).mode & 0o777, 0o700, 'its directory is 0700');
  t.equal(server.env.EC2_API_PACER_SOCKET, server.socketPath, 'runs get its path');
  t.equal(server.env.EC2_API_RATE_RUN_INSTANCES, '5/2', 'and the limits, for a module that cannot reach it');

  /** One connection, as a module process keeps one: sends lines, reads the answers. */
  const connect = async () => {
    const socket = net.createConnection(server.socketPath);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.setEncoding('utf8');
    let buffered = '';
    const lines: string[] = [];
    let wake: (() => void) | undefined;
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      lines.push(...parts);
      wake?.();
    });
    return {
      async ask(request: object): Promise<unknown> {
        socket.write(`${JSON.stringify(request)}\n`);
        while (!lines.length) await new Promise<void>((resolve) => (wake = resolve));
        return JSON.parse(lines.shift()!) as unknown;
      },
      socket,
    };
  };
  const a = await connect();
  const b = await connect();
  const take = { op: 'take', kind: 'run_instances', ...KEY };
  for (let i = 0; i < 3; i++) t.same(await a.ask(take), { wait: 0 });
  for (let i = 0; i < 2; i++) t.same(await b.ask(take), { wait: 0 });
  const sixth = (await a.ask(take)) as { wait: number };
  t.ok(sixth.wait > 0.3, 'the 6th call, from either process, waits: one bucket for both');
  t.match(await b.ask({ op: 'nope' }), { error: /kind must be one of/ });

  const closed = new Promise((resolve) => a.socket.once('close', resolve));
  await server.close();
  await closed;
  t.notOk(fs.existsSync(dir), 'the directory is removed');
  b.socket.destroy();
});
