// pacing: bursts of creates and deletes against a metered EC2 (moto behind
// bench/lib/metered-ec2.mjs, which refuses calls beyond EC2's documented
// buckets with RequestLimitExceeded), and the same against moto alone.
//
// - bursts of N creates (BENCH_PACING_BURSTS, default 40,100,300) on one
//   running service: drain time (burst sent → last task final), the floor
//   (N − 5) / 2 s that RunInstances' bucket allows, their ratio, the first
//   result, RunInstances calls and throttled calls as the proxy counted them;
// - 100 deletes of the 100-burst's instances, right after it: drain time, and the
//   TerminateInstances floor (max(0, calls − 100) / 5 s: 0 when the bucket
//   holds them all), so the ratio is taken against the same 100 deletes on
//   moto alone;
// - against a fresh moto alone (nothing metered, the pacer wide open): 20
//   creates, then 100 creates and their deletes.
// Before the bursts the service runs one create (it resolves the image once
// and reuses it for an hour, as a running service does) and both sides'
// buckets are full again. See bench/README.md, "pacing".
import { startMeteredEc2 } from '../lib/metered-ec2.mjs';
import { loginSource } from '../lib/load.mjs';
import { warmUp } from '../lib/ec2.mjs';
import { UNMETERED_RATES, sleep, startMoto, startService } from '../lib/procs.mjs';
import { log, round as roundTo } from '../lib/stats.mjs';
import { TARGETS } from '../targets.mjs';

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);
const DELETES = 100;
const UNMETERED_CREATES = 20;
/** Long enough for a RunInstances bucket (5 at 2/s) to be full again, on both sides. */
const REFILL_MS = 3_000;

const round = (n, digits = 2) => roundTo(n, digits);

function bursts() {
  const raw = process.env.BENCH_PACING_BURSTS?.trim();
  if (!raw) return [40, 100, 300];
  const sizes = raw.split(',').map((s) => Number(s.trim()));
  if (sizes.some((n) => !Number.isInteger(n) || n < 6)) throw new Error(`BENCH_PACING_BURSTS must be whole numbers ≥ 6, comma-separated, got "${raw}"`);
  return sizes;
}

async function accepted(response, what) {
  const body = await response.json().catch(() => ({}));
  if (response.status !== 202) throw new Error(`${what} → ${response.status} ${JSON.stringify(body)}`);
  return body.task_id;
}

const submitCreate = (url, login) =>
  fetch(`${url}/create-async`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(login) }).then((r) =>
    accepted(r, 'POST /create-async'),
  );
const submitDelete = (url, ip) => fetch(`${url}/delete-async/${ip}`).then((r) => accepted(r, `GET /delete-async/${ip}`));

/** Every task's final document (polled in order, moving past final ones at once), or throws at the deadline. */
async function finalDocs(url, ids, deadline) {
  const docs = [];
  for (const id of ids) {
    for (;;) {
      const doc = await fetch(`${url}/status/${id}`).then((r) => r.json());
      if (TERMINAL.has(doc.status)) {
        docs.push(doc);
        break;
      }
      if (Date.now() > deadline) throw new Error(`task ${id} not final by the deadline (${doc.status})`);
      await sleep(100);
    }
  }
  return docs;
}

/** A burst: submits all at once, waits for all; times from the tasks' own finished_at. */
async function burst(url, submits, timeoutS) {
  const t0 = Date.now();
  const ids = await Promise.all(submits.map((submit) => submit()));
  const submitted = Date.now();
  const docs = await finalDocs(url, ids, t0 + timeoutS * 1000);
  const finished = docs.map((d) => Date.parse(d.finished_at));
  return {
    docs,
    submit_s: round((submitted - t0) / 1000),
    drain_s: round((Math.max(...finished) - t0) / 1000),
    first_result_s: round((Math.min(...finished) - t0) / 1000),
    failed: docs.filter((d) => d.status !== 'succeeded').length,
    first_error: docs.find((d) => d.status !== 'succeeded')?.error ?? null,
  };
}

/** The proxy's counts for one action: calls (throttled included), throttled, and seconds from its first call to its last. */
function counted(ec2, action) {
  const count = ec2.stats()[action] ?? { calls: 0, throttled: 0, first_at: 0, last_at: 0 };
  return { calls: count.calls, throttled: count.throttled, span_s: round((count.last_at - count.first_at) / 1000) };
}

function throttledElsewhere(ec2, except) {
  return Object.fromEntries(Object.entries(ec2.stats()).filter(([action, c]) => action !== except && c.throttled > 0).map(([a, c]) => [a, c.throttled]));
}

/** Create runs that ended, from /metrics. */
async function createRuns(url) {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  return [...text.matchAll(/^ec2_api_playbook_duration_seconds_count\{action="create",outcome="[a-z_]+"\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

async function pacingOf(url) {
  const health = await fetch(`${url}/healthz`).then((r) => r.json());
  return health.pacing.buckets.map(({ kind, tokens, rate, calls, throttled }) => ({ kind, tokens: round(tokens), rate: round(rate), calls, throttled }));
}

/** DELETES deletes at once against the metered EC2: drain, and TerminateInstances calls and refusals. */
async function deleteBurst(url, ec2, ips) {
  await sleep(REFILL_MS);
  ec2.reset();
  log(`pacing: ${DELETES} deletes at once against the metered EC2`);
  const result = await burst(url, ips.slice(0, DELETES).map((ip) => () => submitDelete(url, ip)), 300);
  const terminate = counted(ec2, 'TerminateInstances');
  const out = {
    tasks: DELETES,
    drain_s: result.drain_s,
    floor_s: Math.max(0, terminate.calls - terminate.throttled - 100) / 5,
    failed: result.failed,
    first_error: result.first_error,
    terminate_calls: terminate.calls,
    terminate_throttled: terminate.throttled,
    other_throttled: throttledElsewhere(ec2, 'TerminateInstances'),
  };
  log(`  drained in ${out.drain_s} s; ${result.failed} failed; TerminateInstances ${terminate.throttled}/${terminate.calls} throttled`);
  return out;
}

async function phasePacing() {
  const out = { bursts: {}, deletes: null, unmetered: null };
  const moto = await startMoto();
  await warmUp(moto.url);
  const ec2 = await startMeteredEc2(moto.url);
  const service = await startService(ec2.url, { name: 'service-pacing' });
  const nextLogin = loginSource();
  const ipsOf = {};
  try {
    log('pacing: one create first (the service resolves the image once), then full buckets');
    const warm = await burst(service.url, [() => submitCreate(service.url, nextLogin())], 120);
    if (warm.failed) throw new Error(`the warm-up create failed: ${warm.first_error}`);

    for (const n of bursts()) {
      await sleep(REFILL_MS);
      ec2.reset();
      log(`pacing: ${n} creates at once against the metered EC2 (floor ${(n - 5) / 2} s)`);
      const runsBefore = await createRuns(service.url);
      const result = await burst(service.url, Array.from({ length: n }, () => () => submitCreate(service.url, nextLogin())), 120 + n * 2);
      // Results come before their run ends: wait for the last run to end, then count them.
      while ((await fetch(`${service.url}/healthz`).then((r) => r.json())).running_playbooks > 0) await sleep(200);
      const runs = (await createRuns(service.url)) - runsBefore;
      ipsOf[n] = result.docs.map((d) => d.ip).filter(Boolean);
      const run = counted(ec2, 'RunInstances');
      const floor = (n - 5) / 2;
      out.bursts[n] = {
        tasks: n,
        submit_s: result.submit_s,
        playbook_runs: runs,
        drain_s: result.drain_s,
        floor_s: floor,
        ratio: round(result.drain_s / floor),
        first_result_s: result.first_result_s,
        failed: result.failed,
        first_error: result.first_error,
        // From the first RunInstances EC2 saw to the last: the pacing alone, without the start-up before it.
        launch_span_s: run.span_s,
        launch_span_ratio: round(run.span_s / floor),
        run_instances_calls: run.calls,
        run_instances_throttled: run.throttled,
        throttled_share: round(run.throttled / run.calls, 3),
        other_throttled: throttledElsewhere(ec2, 'RunInstances'),
        pacing_after: await pacingOf(service.url),
      };
      const b = out.bursts[n];
      log(
        `  drained in ${b.drain_s} s (floor ${floor} s, ×${b.ratio}); first result ${b.first_result_s} s; ${b.failed} failed; ` +
          `RunInstances ${b.run_instances_throttled}/${b.run_instances_calls} throttled, first to last ${b.launch_span_s} s (×${b.launch_span_ratio}); ` +
          `submitted in ${b.submit_s} s, ${b.playbook_runs} runs`,
      );

      // The deletes of the burst of DELETES, at once, while moto holds about
      // as many instances as in the same test against moto alone below
      // (moto's look-ups slow down as it holds more).
      if (n === DELETES) out.deletes = await deleteBurst(service.url, ec2, ipsOf[n]);
    }

    if (!out.deletes) log(`pacing: deletes skipped: a ${DELETES}-create burst is needed first (BENCH_PACING_BURSTS)`);
  } finally {
    await service.stop();
    await ec2.close();
    await moto.stop();
  }

  // The same service against a fresh moto alone (as the drain phase starts
  // one: moto slows down as it holds more instances): nothing refused, the
  // pacer wide open.
  const bare = await startMoto();
  await warmUp(bare.url);
  const plain = await startService(bare.url, { env: UNMETERED_RATES, name: 'service-unmetered' });
  try {
    await burst(plain.url, [() => submitCreate(plain.url, nextLogin())], 120);
    await sleep(REFILL_MS);
    log(`pacing: ${UNMETERED_CREATES} creates, then ${DELETES} creates and their deletes, against moto alone`);
    const creates = await burst(plain.url, Array.from({ length: UNMETERED_CREATES }, () => () => submitCreate(plain.url, nextLogin())), 300);
    await sleep(REFILL_MS);
    const made = await burst(plain.url, Array.from({ length: DELETES }, () => () => submitCreate(plain.url, nextLogin())), 600);
    await sleep(REFILL_MS);
    const deletes = await burst(plain.url, made.docs.filter((d) => d.ip).map((d) => () => submitDelete(plain.url, d.ip)), 300);
    out.unmetered = {
      creates: { tasks: UNMETERED_CREATES, drain_s: creates.drain_s, first_result_s: creates.first_result_s, failed: creates.failed },
      creates_100: { drain_s: made.drain_s, failed: made.failed },
      deletes: { tasks: DELETES, drain_s: deletes.drain_s, failed: deletes.failed },
    };
    log(`  ${UNMETERED_CREATES} creates in ${creates.drain_s} s; ${DELETES} creates in ${made.drain_s} s; ${DELETES} deletes in ${deletes.drain_s} s`);
    if (out.deletes) out.deletes.ratio_to_unmetered = round(out.deletes.drain_s / deletes.drain_s);
    // The same 100 creates with nothing metered: what the machine allows today, beside the floor.
    if (out.bursts[DELETES]) out.bursts[DELETES].ratio_to_unmetered = round(out.bursts[DELETES].drain_s / made.drain_s);
  } finally {
    await plain.stop();
    await bare.stop();
  }
  return out;
}

/** The table's rows: add(phase, metric, value, target, pass). */
function check(pacing, add) {
  const { ratio, throttledShare, firstResultS, unmeteredLastResultS } = TARGETS.pacing;
  for (const [n, b] of Object.entries(pacing.bursts)) {
    const phase = `pacing ${n} creates`;
    add(phase, 'drain s / floor s', `${b.drain_s} / ${b.floor_s} (×${b.ratio})`, ratio.text, ratio.pass(b.ratio));
    add(phase, 'first to last RunInstances s', `${b.launch_span_s} (×${b.launch_span_ratio})`, '');
    add(phase, 'RunInstances throttled', `${b.run_instances_throttled}/${b.run_instances_calls}`, throttledShare.text, throttledShare.pass(b.throttled_share));
    add(phase, 'tasks failed', b.failed, '0', b.failed === 0);
    if (b.ratio_to_unmetered !== undefined) add(phase, 'drain / same on moto alone', b.ratio_to_unmetered, '');
    const first = firstResultS[n];
    add(phase, 'first result s', b.first_result_s, first ? first.text : '', first ? first.pass(b.first_result_s) : null);
  }
  if (pacing.deletes) {
    const d = pacing.deletes;
    const r = d.ratio_to_unmetered ?? null;
    add('pacing 100 deletes', 'drain s (TerminateInstances floor s)', `${d.drain_s} (${d.floor_s})`, '');
    add('pacing 100 deletes', 'drain / same on moto alone', r, ratio.text, r === null ? null : ratio.pass(r));
    add('pacing 100 deletes', 'TerminateInstances throttled; failed', `${d.terminate_throttled}/${d.terminate_calls}; ${d.failed}`, '0', d.terminate_throttled === 0 && d.failed === 0);
  }
  if (pacing.unmetered) {
    const c = pacing.unmetered.creates;
    const target = unmeteredLastResultS[c.tasks];
    add(`pacing moto alone ${c.tasks} creates`, 'drain s', c.drain_s, target ? target.text : '', target ? target.pass(c.drain_s) && c.failed === 0 : null);
  }
}

export default {
  name: 'pacing',
  key: 'pacing',
  idleMoto: false,
  run: phasePacing,
  check,
};
