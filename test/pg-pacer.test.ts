// The EC2 pacer shared by nodes on one PostgreSQL (src/ansible/pg-pacer.ts,
// docs/pacing.md "Across nodes"), against a real private cluster: the SQL
// statement is pacer.ts's Bucket step by step; two nodes draw on one budget
// exactly as one in-memory pacer given both nodes' calls would; concurrent
// takes are serialized (none overdraws); the socket serves it; and a node
// whose database does not answer paces itself and says so once.
import net from 'node:net';
import type pg from 'pg';
import t from 'tap';
import { Bucket, bucketId, Pacer, SEND_SLACK_S, waitFor, type BucketKey, type PacingLimits } from '../src/ansible/pacer.js';
import { startPacerServer } from '../src/ansible/pacer-server.js';
import { openPacerPool, PgBuckets, SHARED_RETRY_S, SharedPacer, type BucketRow, type PacerLog } from '../src/ansible/pg-pacer.js';
import { loadConfig } from '../src/config.js';
import { migratePg, openPool } from '../src/tasks/pg-schema.js';
import { startService, type TestService } from './helpers/harness.js';
import { startPostgres } from './helpers/postgres.js';

const cluster = await startPostgres();
t.teardown(() => cluster.stop());

const EC2: PacingLimits = loadConfig({}).pacing;
const KEY: BucketKey = { endpoint: 'http://127.0.0.1:5001', region: 'us-east-1', account: 'abc123' };
const ID = bucketId(KEY, 'run_instances');
const close = (a: number, b: number, eps = 1e-9) => Math.abs(a - b) <= eps * Math.max(1, Math.abs(a), Math.abs(b));

/** A new migrated database; `pools(n)` opens n pacer pools on it (ended with the test), one per node. */
async function database(t: { teardown(fn: () => unknown): void }) {
  const url = await cluster.database();
  const admin = openPool(url, 1);
  await migratePg(admin);
  await admin.end();
  const pools = (n: number): pg.Pool[] =>
    Array.from({ length: n }, () => {
      const pool = openPacerPool(url);
      t.teardown(() => pool.end());
      return pool;
    });
  return { url, pools };
}

/** A log that keeps what it is told. */
function recorder(): PacerLog & { warned: string[]; told: string[] } {
  const warned: string[] = [];
  const told: string[] = [];
  return { warned, told, warn: (_o, message) => void warned.push(message), info: (_o, message) => void told.push(message) };
}

/** A clock the test moves (seconds), for the database's time and the nodes' alike. */
const testClock = (start = 1_000) => {
  const clock = { now: start, read: () => clock.now };
  return clock;
};

/** A seeded generator: the same steps every run. */
function random(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 4_294_967_296;
  };
}

t.test("the statement is pacer.ts's Bucket, step by step: refill, negative balance, AIMD, window, floor, caps", async (t) => {
  const { pools } = await database(t);
  const [pool] = pools(1) as [pg.Pool];
  // EC2's RunInstances bucket, and one whose configured rate is under MIN_RATE (the floor is then the configured rate).
  for (const size of [EC2.run_instances, { capacity: 3, refillPerSecond: 0.4 }]) {
    const clock = testClock();
    const rows = new PgBuckets(pool, clock.read);
    const id = `${ID}-${size.capacity}`;
    const bucket = new Bucket(size, clock.now);
    const next = random(size.capacity);
    let decreases = 0;
    for (let step = 0; step < 300; step++) {
      // Steps of 0 to 3 s, often none or a few ms (calls sent together), sometimes long enough to fill up.
      const r = next();
      clock.now += r < 0.2 ? 0 : r < 0.5 ? next() * 0.05 : r < 0.95 ? next() * 1.5 : 3 + next() * 10;
      let row: BucketRow;
      if (next() < 0.15) {
        const before = bucket.state.lastDecrease;
        bucket.throttle(clock.now);
        if (bucket.state.lastDecrease !== before) decreases++;
        row = await rows.throttle(id, size);
      } else {
        const n = 1 + Math.floor(next() * 3);
        const wait = bucket.take(n, clock.now);
        row = await rows.take(id, size, n);
        if (!close(waitFor(row.tokens, row.rate), wait)) t.fail(`step ${step}: wait ${waitFor(row.tokens, row.rate)}, pacer.ts says ${wait}`);
      }
      const state = bucket.state;
      const same =
        close(row.tokens, state.tokens) &&
        close(row.rate, state.rate) &&
        close(row.at, state.at) &&
        (state.lastDecrease === -Infinity ? row.lastDecrease < -1e17 : close(row.lastDecrease, state.lastDecrease));
      if (!same) {
        t.fail(`step ${step} at ${clock.now}: the row ${JSON.stringify(row)} is not pacer.ts's ${JSON.stringify(state)}`);
        return;
      }
    }
    t.pass(`${size.capacity}/${size.refillPerSecond}: 300 takes and throttles, the row equal to pacer.ts's bucket after each`);
    t.ok(decreases >= 5, `the steps decreased the rate ${decreases} times (and skipped throttles inside the window)`);
  }
});

t.test('two nodes on one database share one budget: 9 takes at one instant, the 6th to the 9th told to wait 0.5 s apart, in order', async (t) => {
  const { pools } = await database(t);
  const clock = testClock();
  const [a, b] = pools(2).map((pool, i) => new SharedPacer(EC2, new PgBuckets(pool, clock.read), `node-${'ab'[i]}`, recorder(), clock.read)) as [
    SharedPacer,
    SharedPacer,
  ];
  const waits: number[] = [];
  for (let i = 0; i < 9; i++) waits.push(await (i % 2 === 0 ? a : b).take(KEY, 'run_instances'));
  t.same(waits.slice(0, 5), [0, 0, 0, 0, 0], "the bucket's 5 go at once, 3 on node A and 2 on node B");
  const expected = [0.5, 1, 1.5, 2].map((s) => s + SEND_SLACK_S);
  t.ok(
    waits.slice(5).every((wait, i) => close(wait, expected[i]!)),
    `then A, B, A, B wait ${waits.slice(5).join(', ')} s (${expected.join(', ')}): one bucket, not one per node`,
  );
  const [viewA] = await a.snapshot();
  const [viewB] = await b.snapshot();
  t.match(viewA, { kind: 'run_instances', tokens: -4, rate: 2, calls: 5, throttled: 0 }, "node A: the shared bucket's tokens, its own 5 calls");
  t.match(viewB, { tokens: -4, rate: 2, calls: 4 }, 'node B: the same bucket, its own 4 calls');
});

t.test('two nodes, calls and throttles interleaved in time, get exactly what one in-memory pacer given all their calls gives', async (t) => {
  const { pools } = await database(t);
  const clock = testClock();
  const nodes = pools(2).map((pool, i) => new SharedPacer(EC2, new PgBuckets(pool, clock.read), `node-${i}`, recorder(), clock.read));
  const one = new Pacer(EC2, clock.read);
  const next = random(7);
  for (let step = 0; step < 120; step++) {
    clock.now += next() < 0.3 ? 0 : next() * 0.8;
    const node = nodes[next() < 0.5 ? 0 : 1]!;
    if (next() < 0.1) {
      await node.throttled(KEY, 'run_instances');
      one.throttled(KEY, 'run_instances');
    } else {
      const [shared, alone] = [await node.take(KEY, 'run_instances'), one.take(KEY, 'run_instances')];
      if (!close(shared, alone)) {
        t.fail(`step ${step}: ${node.node} waits ${shared} s where one pacer says ${alone} s`);
        return;
      }
    }
  }
  const [all] = one.snapshot();
  const views = await Promise.all(nodes.map(async (node) => (await node.snapshot())[0]!));
  t.ok(close(views[0]!.tokens, all!.tokens) && close(views[1]!.rate, all!.rate), 'both nodes see the one bucket');
  t.equal(views[0]!.calls + views[1]!.calls, all!.calls, "the nodes' own calls add up to all the calls");
  t.equal(views[0]!.throttled + views[1]!.throttled, all!.throttled, 'and their throttles');
  t.ok(all!.throttled >= 5);
});

t.test('a throttle reported on node A lowers the rate node B sees and waits by', async (t) => {
  const { pools } = await database(t);
  const clock = testClock();
  const [a, b] = pools(2).map((pool, i) => new SharedPacer(EC2, new PgBuckets(pool, clock.read), `node-${'ab'[i]}`, recorder(), clock.read)) as [
    SharedPacer,
    SharedPacer,
  ];
  t.equal(await b.take(KEY, 'run_instances'), 0, 'B: a full bucket');
  await a.throttled(KEY, 'run_instances');
  t.match(await b.snapshot(), [{ tokens: 0, rate: 1.4, throttled: 0 }], 'B sees the bucket A emptied, at 0.7 × 2/s');
  t.ok(close(await b.take(KEY, 'run_instances'), 1 / 1.4 + SEND_SLACK_S), "B's next call waits a token at 1.4/s");
  clock.now += 0.5;
  await b.throttled(KEY, 'run_instances');
  t.match(await a.snapshot(), [{ rate: 1.4 + 0.5 * 0.2, throttled: 1 }], "a throttle within A's 1 s window counts (on B) but does not decrease again");
  clock.now += 0.5;
  await b.throttled(KEY, 'run_instances');
  t.ok(close((await a.snapshot())[0]!.rate, (1.4 + 0.2) * 0.7), 'one a full window after A\'s decreases again, from the rate regained meanwhile');
  t.same(
    [(await a.snapshot())[0]!.throttled, (await b.snapshot())[0]!.throttled],
    [1, 2],
    'each node counts its own throttles',
  );
});

t.test('concurrent takes from two nodes on the database clock are serialized: each sees the one before, none overdraws', async (t) => {
  const { pools } = await database(t);
  const nodes = pools(2).map((pool) => new PgBuckets(pool));
  const size = EC2.run_instances;
  const rows = await Promise.all(Array.from({ length: 40 }, (_, i) => nodes[i % 2]!.take(ID, size, 1)));
  // In the order the row lock let them in: the database's time, then tokens going down (two in one microsecond).
  rows.sort((x, y) => x.at - y.at || y.tokens - x.tokens);
  t.equal(rows[0]!.tokens, size.capacity - 1, 'the first take found a full bucket');
  let serialized = true;
  let duesApart = true;
  for (let k = 1; k < rows.length; k++) {
    const [before, row] = [rows[k - 1]!, rows[k]!];
    // pacer.ts's refill and take: what this take must leave, given the one before it.
    const expected = Math.min(size.capacity, before.tokens + (row.at - before.at) * size.refillPerSecond) - 1;
    if (!close(row.tokens, expected, 1e-6)) {
      serialized = false;
      t.fail(`take ${k + 1} left ${row.tokens} tokens where the one before leaves ${expected}`);
    }
    // While the bucket is below zero, each caller's token is due 1/rate after the one before.
    const due = (r: BucketRow) => r.at + waitFor(r.tokens, r.rate);
    if (before.tokens < 0 && !close(due(row) - due(before), 1 / size.refillPerSecond, 1e-6)) duesApart = false;
  }
  t.ok(serialized, '40 concurrent takes: each row is the one before it, refilled and taken from (no take lost)');
  t.ok(duesApart, 'in debt, the tokens fall due 0.5 s apart, in the order taken');
  const last = rows.at(-1)!;
  const allowed = size.capacity + (last.at - rows[0]!.at) * size.refillPerSecond;
  t.ok(40 - allowed >= -last.tokens - 1e-6, `never more than capacity + rate × elapsed handed out (${(40 + last.tokens).toFixed(3)} ≤ ${allowed.toFixed(3)})`);
  t.equal(rows.filter((row) => row.tokens >= 0).length <= size.capacity + Math.ceil((last.at - rows[0]!.at) * size.refillPerSecond), true);
});

t.test('through the socket: two nodes\' servers hand out one budget', async (t) => {
  const { pools } = await database(t);
  const servers = await Promise.all(pools(2).map((pool, i) => startPacerServer(new SharedPacer(EC2, new PgBuckets(pool), `node-${i}`, recorder()))));
  t.teardown(() => Promise.all(servers.map((server) => server.close())));
  /** One connection, as a module process keeps one: one request line, one answer. */
  const connect = async (path: string) => {
    const socket = net.createConnection(path);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.setEncoding('utf8');
    let buffered = '';
    const lines: string[] = [];
    let waiting: ((line: string) => void) | null = null;
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        lines.push(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
      }
      if (waiting && lines.length) waiting(lines.shift()!);
    });
    t.teardown(() => socket.destroy());
    return (request: object) =>
      new Promise<Record<string, number>>((resolve) => {
        waiting = (line) => resolve(JSON.parse(line) as Record<string, number>);
        socket.write(`${JSON.stringify(request)}\n`);
      });
  };
  const ask = await Promise.all(servers.map((server) => connect(server.socketPath)));
  const waits: number[] = [];
  const started = performance.now() / 1000;
  for (let i = 0; i < 9; i++) waits.push((await ask[i % 2]!({ op: 'take', kind: 'run_instances', n: 1, ...KEY })).wait!);
  const elapsed = performance.now() / 1000 - started;
  t.same(waits.slice(0, 5), [0, 0, 0, 0, 0]);
  // On the database's clock: the k-th token in debt is due k × 0.5 s after the burst, less the time the burst took.
  const ok = waits.slice(5).every((wait, i) => wait <= (i + 1) * 0.5 + SEND_SLACK_S + 1e-6 && wait >= (i + 1) * 0.5 + SEND_SLACK_S - elapsed - 1e-6);
  t.ok(ok, `the 6th to the 9th, on either node, wait ${waits.slice(5).map((w) => w.toFixed(3)).join(', ')} s (0.5 s apart, less the ${elapsed.toFixed(3)} s the calls took)`);
  t.same(await ask[1]!({ op: 'throttled', kind: 'run_instances', ...KEY }), { ok: true });
  const [view] = await servers[0]!.pacer.snapshot();
  t.match(view, { calls: 5, throttled: 0 }, 'node 0: its own 5 calls, no throttle of its own');
  t.ok(view!.rate >= 1.4 && view!.rate < 1.5, `node 0 sees the rate node 1's throttle lowered to 0.7 × 2/s (${view!.rate.toFixed(3)}, regaining 0.2/s since)`);
});

t.test('a node whose database does not answer paces its calls itself, from the shared bucket as it last saw it, and says so once', async (t) => {
  const { pools } = await database(t);
  const [pool] = pools(1) as [pg.Pool];
  const clock = testClock();
  class Flaky extends PgBuckets {
    down = false;
    asked = 0;
    override take(...args: Parameters<PgBuckets['take']>) {
      this.asked++;
      return this.down ? Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432')) : super.take(...args);
    }
    override read(...args: Parameters<PgBuckets['read']>) {
      return this.down ? Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432')) : super.read(...args);
    }
  }
  const rows = new Flaky(pool, clock.read);
  const log = recorder();
  const node = new SharedPacer(EC2, rows, 'node-a', log, clock.read);
  for (let i = 0; i < 5; i++) await node.take(KEY, 'run_instances');
  rows.down = true;
  const waits: number[] = [];
  for (let i = 0; i < 3; i++) waits.push(await node.take(KEY, 'run_instances'));
  t.same(
    waits.map((w) => Number(w.toFixed(9))),
    [0.6, 1.1, 1.6],
    'the bucket was empty when the database stopped answering: the node goes on from there, not from a full bucket',
  );
  t.equal(rows.asked, 6, 'and does not ask the database again for a while (one failed ask)');
  t.equal(log.warned.length, 1, 'one warning');
  t.match(log.warned[0], /cannot reach PostgreSQL/);
  t.match(await node.snapshot(), [{ tokens: -3, calls: 8 }], '/metrics still answer, with the last view');
  clock.now += SHARED_RETRY_S;
  t.equal(typeof (await node.take(KEY, 'run_instances')), 'number', 'still down after the pause: a wait, not an error');
  t.same([rows.asked, log.warned.length], [7, 1], 'asked again once, still one warning');
  clock.now += SHARED_RETRY_S;
  rows.down = false;
  t.equal(await node.take(KEY, 'run_instances'), 0, 'back: the shared bucket, refilled over the 10 s');
  t.equal(rows.asked, 8);
  t.match(await node.snapshot(), [{ tokens: 4, calls: 10 }], "the shared row's tokens: it saw 5 takes and this one");
  t.same(log.told, ['the EC2 pacer shares its buckets in PostgreSQL again']);

  // A database that never answered (nothing listens): waits from full buckets, no error, one warning.
  const dead = openPacerPool('postgres://postgres@127.0.0.1:1/none');
  t.teardown(() => dead.end());
  const alone = recorder();
  const lonely = new SharedPacer(EC2, new PgBuckets(dead), 'node-b', alone);
  const lonelyWaits: number[] = [];
  for (let i = 0; i < 6; i++) lonelyWaits.push(await lonely.take(KEY, 'run_instances'));
  t.same(lonelyWaits.slice(0, 5), [0, 0, 0, 0, 0]);
  t.ok(lonelyWaits[5]! > 0.5, 'then the configured pace');
  t.equal(alone.warned.length, 1);
});

t.test("two services on one database: each node's /healthz and /metrics show the shared bucket and its own calls, labelled with its node id", async (t) => {
  const url = await cluster.database();
  const nodes = await Promise.all(
    ['node-a', 'node-b'].map((id) => startService('http://127.0.0.1:9', { EC2_API_DB: url, EC2_API_NODE_ID: id, EC2_API_PAUSED: '1' })),
  );
  t.teardown(() => Promise.all(nodes.map((node) => node.close())));
  const [a, b] = nodes as [TestService, TestService];
  for (let i = 0; i < 3; i++) await a.app.engine.pacer.take(KEY, 'run_instances');
  await b.app.engine.pacer.take(KEY, 'run_instances', 4);
  await b.app.engine.pacer.throttled(KEY, 'run_instances');

  const health = (await a.app.inject({ method: 'GET', url: '/healthz' })).json();
  t.equal(health.pacing.node, 'node-a');
  const [bucket] = health.pacing.buckets;
  t.match(bucket, { kind: 'run_instances', calls: 3, throttled: 0, configured_rate: 2 }, "node A's /healthz: its own 3 calls");
  t.ok(bucket.tokens <= 0 && bucket.rate < 1.5, `and the shared bucket B took 4 from and emptied (tokens ${bucket.tokens.toFixed(2)}, rate ${bucket.rate.toFixed(2)})`);

  const metrics = (await b.app.inject({ method: 'GET', url: '/metrics' })).body;
  const labels = `kind="run_instances",endpoint="${KEY.endpoint}",region="${KEY.region}",account="${KEY.account}"`;
  t.match(metrics, new RegExp(`ec2_api_pacing_calls_total\\{${labels},node="node-b"\\} 4\\n`), "node B's /metrics: its own 4 calls, labelled node-b");
  t.match(metrics, new RegExp(`ec2_api_pacing_throttled_total\\{${labels},node="node-b"\\} 1\\n`));
  const rate = Number(new RegExp(`ec2_api_pacing_rate\\{${labels}\\} ([0-9.]+)`).exec(metrics)?.[1]);
  t.ok(rate >= 1.4 && rate < 1.5, `the shared rate, unlabelled by node (${rate})`);
  t.match(metrics, /ec2_api_node_info\{node="node-b"\} 1\n/);
  t.match(metrics, /ec2_api_queue_depth 0\n/, "beside the cluster's queue");
});
