#!/usr/bin/env node
// ec2-api benchmark: `npm run bench [-- --only accept,drain --duration 5 --runs 3 --drain 20,50 --profile]`.
//
// Starts its own moto server(s) and the BUILT service (node dist/server.js)
// as child processes, never real AWS, measures each phase, prints a table
// with targets and writes bench/results/latest.json. See bench/README.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { ensureBuilt, gitRevision } from './lib/build.mjs';
import { instanceIdsOfTask, instancesPerTask, warmUp } from './lib/ec2.mjs';
import { distinctCreateRequests, loginSource, probe, verifyHashes } from './lib/load.mjs';
import { MB, allStats, cpuTimes, descendants, machineCpu, otherLoad, readCmdline, readStat, startSampler, threadSplit, threadTimes, treeCpu } from './lib/procfs.mjs';
import { formatTop, topSelfTime } from './lib/profile.mjs';
import { fromVenv, killAllNow, projectRoot, runToEnd, safeEnv, sleep, startMoto, startService, stopAll } from './lib/procs.mjs';

// ---------------------------------------------------------------- options --

const PHASES = ['accept', 'accept-distinct', 'status', 'status-load', 'memory', 'drain', 'sync'];
const USAGE = `usage: npm run bench -- [--only PHASE,…] [--duration S] [--runs N] [--drain N,N] [--profile]
  --only      phases to run, comma-separated (default: all): ${PHASES.join(', ')}
  --duration  seconds per autocannon run (default 10)
  --runs      /create and by-hand playbook runs each for sync (default 5)
  --drain     task counts for drain (default 20,50,200)
  --profile   start the service with --cpu-prof (profiles in bench/results/profiles/);
              accept phases then stop it with SIGTERM instead of kill -9 so the profile is written
EC2_API_CONCURRENCY, EC2_API_BATCH_SIZE and other EC2_API_* settings pass through to the service.`;

function parseArgs(argv) {
  const opts = { only: [...PHASES], duration: 10, runs: 5, drain: [20, 50, 200], profile: false };
  const args = argv.flatMap((arg) => (/^--\w+=/.test(arg) ? arg.split(/=(.*)/s, 2) : [arg]));
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = () => {
      if (args[i + 1] === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      return args[++i];
    };
    const positive = (raw) => {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${arg} must be a whole number ≥ 1, got "${raw}"`);
      return n;
    };
    if (arg === '--only') {
      opts.only = value().split(',').map((s) => s.trim()).filter(Boolean);
      const unknown = opts.only.filter((p) => !PHASES.includes(p));
      if (unknown.length) throw new Error(`unknown phase(s) ${unknown.join(', ')}; choose from ${PHASES.join(',')}`);
    } else if (arg === '--duration') opts.duration = positive(value());
    else if (arg === '--runs') opts.runs = positive(value());
    else if (arg === '--drain') opts.drain = value().split(',').map(positive);
    else if (arg === '--profile') opts.profile = true;
    else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${arg}\n${USAGE}`);
  }
  return opts;
}

// ---------------------------------------------------------------- helpers --

const RESULTS_DIR = path.join(projectRoot, 'bench', 'results');
const PROFILE_DIR = path.join(RESULTS_DIR, 'profiles');
/** The README's login: the same body every time ("fixed body"). */
const FIXED_LOGIN = { username: 'suitepad', password: 'suitepad' };
const BODY = JSON.stringify(FIXED_LOGIN);
const JSON_HEADERS = { 'content-type': 'application/json' };
const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);
/** The status probe run beside the distinct-password creates: 4 connections, one request each every 20 ms. */
const PROBE = { connections: 4, intervalMs: 20 };
/** One-task runs timed for the fixed cost of a run: the first (resolves the image) and this many more. */
const FIXED_COST_WARM_RUNS = 3;
/** Targets of issue 10. */
const TARGETS = {
  drainLastS: { 20: 4, 50: 6, 200: 15 },
  drainFirstS: { 20: 3 },
  cpuPerTaskBeyondFixed: 0.1,
  acceptDistinct16: 250,
  statusLoadP99: 25,
  syncRatio: 1.0,
};

const log = (...args) => console.log('·', ...args);
const round = (n, digits = 1) => (n === null || n === undefined || Number.isNaN(n) ? null : Math.round(n * 10 ** digits) / 10 ** digits);
const median = (xs) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

const liveCannons = new Set();
function cannon(options) {
  return new Promise((resolve, reject) => {
    const instance = autocannon(options, (error, result) => {
      liveCannons.delete(instance);
      if (error) reject(error);
      else resolve(result);
    });
    liveCannons.add(instance);
  });
}

function summarizeCannon(r) {
  return {
    connections: r.connections,
    duration_s: r.duration,
    requests: r.requests.total,
    req_per_s: round(r.requests.average, 0),
    latency_ms: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: round(r.latency.average, 2) },
    '2xx': r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    status_codes: Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([code, { count }]) => [code, count])),
  };
}

const profileArgs = (opts, name) =>
  opts.profile ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR, '--cpu-prof-name', `${name}.cpuprofile`] : [];

async function submitCreate(url, login = FIXED_LOGIN) {
  const response = await fetch(`${url}/create-async`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(login) });
  const body = await response.json().catch(() => ({}));
  if (response.status !== 202) throw new Error(`POST /create-async → ${response.status} ${JSON.stringify(body)}`);
  return body.task_id;
}

async function getStatus(url, id) {
  const response = await fetch(`${url}/status/${id}`);
  if (!response.ok) throw new Error(`GET /status/${id} → ${response.status}`);
  return response.json();
}

function mb(bytes) {
  return round(bytes / MB, 1);
}

/** The tasks table of a stopped service (read-only): task id → { username, password_hash }. */
function storedCreates(dbPath) {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  const rows = db.prepare("SELECT id, params FROM tasks WHERE action = 'create'").all();
  db.close();
  const out = new Map();
  for (const row of rows) {
    let params = {};
    try {
      params = JSON.parse(row.params);
    } catch {
      // counted as a row without a hash
    }
    out.set(row.id, { username: params.username, password_hash: params.password_hash });
  }
  return out;
}

/** How many rows, and how many different hashes among them (one per request = every password was hashed). */
function hashCounts(stored) {
  const hashes = new Set();
  for (const { password_hash } of stored.values()) if (password_hash) hashes.add(password_hash);
  return { rows: stored.size, distinct_hashes: hashes.size };
}

/** Tasks per batch (the tasks a run took together), in the order the batches started, from a stopped service's database. */
function batchSizes(dbPath) {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare('SELECT COUNT(*) AS n FROM tasks WHERE batch_id IS NOT NULL GROUP BY batch_id ORDER BY MIN(started_at)')
      .pluck()
      .all();
  } finally {
    db.close();
  }
}

/** Sum of `ec2_api_playbook_duration_seconds_count` samples from GET /metrics, by label set. */
async function playbookRunsFromMetrics(url) {
  try {
    const text = await fetch(`${url}/metrics`).then((r) => r.text());
    const byLabels = {};
    let total = 0;
    for (const m of text.matchAll(/^ec2_api_playbook_duration_seconds_count(\{[^}]*\})?\s+([0-9.e+]+)$/gm)) {
      const n = Number(m[2]);
      total += n;
      byLabels[m[1] ?? ''] = n;
    }
    return { total, byLabels };
  } catch {
    return null;
  }
}

/** ansible-playbook processes among the service's children now. */
function livePlaybooks(servicePid) {
  return descendants(servicePid, allStats()).filter(
    (s) => s.ppid === servicePid && s.state !== 'Z' && readCmdline(s.pid).some((arg) => arg.endsWith('ansible-playbook')),
  ).length;
}

/** Waits until the service has no playbook running (so their CPU is in its cutime); false on timeout. */
async function waitRunsReaped(service, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const health = await fetch(`${service.url}/healthz`).then((r) => r.json()).catch(() => null);
    if (health && health.running_playbooks === 0 && health.queued === 0 && livePlaybooks(service.pid) === 0) return true;
    await sleep(50);
  }
  return false;
}

/**
 * Polls /status of `ids` in order (about one request per 100 ms tick, moving
 * past terminal tasks at once) until all are terminal or the deadline.
 */
async function waitTerminal(url, ids, deadline) {
  const final = new Map();
  let next = 0;
  while (next < ids.length && Date.now() <= deadline) {
    const doc = await getStatus(url, ids[next]);
    if (TERMINAL.has(doc.status)) {
      final.set(ids[next], doc);
      next++;
      continue;
    }
    await sleep(100);
  }
  return { final, seenAllAt: next === ids.length ? Date.now() : null };
}

/** Runs `fn` (a load) and says where the service's CPU went meanwhile, by thread, and the bench's own. */
async function withThreadSplit(pid, fn) {
  const before = threadTimes(pid);
  const benchBefore = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const wall = (performance.now() - t0) / 1000;
  const bench = process.cpuUsage(benchBefore);
  const split = threadSplit(pid, before, threadTimes(pid), wall);
  split.bench_process_cores = round((bench.user + bench.system) / 1e6 / wall, 2);
  return { value, split };
}

// Moto for the phases that launch nothing (accept, status, memory): one, shared.
let sharedMoto = null;
async function idleMoto() {
  sharedMoto ??= await startMoto();
  return sharedMoto;
}

// ----------------------------------------------------------------- phases --

/** accept: POST /create-async with the same body every time, on a paused service; then kill -9 and count what is on disk. */
async function phaseAccept(opts) {
  const moto = await idleMoto();
  const out = {};
  for (const sync of ['FULL', 'NORMAL']) {
    const service = await startService(moto.url, {
      env: { EC2_API_PAUSED: '1', EC2_API_MAX_QUEUED: '1000000', EC2_API_DB_SYNC: sync === 'NORMAL' ? 'NORMAL' : undefined },
      nodeArgs: profileArgs(opts, `accept-${sync}`),
      name: `service-accept-${sync}`,
    });
    const accepted = [];
    const runs = {};
    for (const connections of [16, 64]) {
      log(`accept (fixed body), synchronous=${sync}: ${connections} connections × ${opts.duration} s`);
      const result = await cannon({
        url: service.url,
        connections,
        duration: opts.duration,
        requests: [
          {
            method: 'POST',
            path: '/create-async',
            headers: JSON_HEADERS,
            body: BODY,
            onResponse: (status, body) => {
              if (status !== 202) return;
              const match = /"task_id":"([0-9a-f-]{36})"/.exec(body);
              if (match) accepted.push(match[1]);
            },
          },
        ],
      });
      runs[`c${connections}`] = summarizeCannon(result);
    }
    const rssAfter = readStat(service.pid)?.rss ?? 0;
    // The crash: no shutdown code runs. (--profile needs a clean exit to write the profile.)
    const stopSignal = opts.profile ? 'SIGTERM' : 'SIGKILL';
    await service.stop({ signal: stopSignal });
    const stored = storedCreates(service.dbPath);
    const found = accepted.filter((id) => stored.has(id)).length;
    out[sync] = {
      db_sync: sync === 'NORMAL' ? 'NORMAL (EC2_API_DB_SYNC=NORMAL)' : 'FULL (default)',
      ...runs,
      stopped_with: stopSignal,
      durable: { accepted_202: accepted.length, found, rows_in_tasks: stored.size, all_durable: found === accepted.length },
      // The same login each time: distinct_hashes 1 means the service reused one hash; = rows, that it hashed every request.
      hashes: hashCounts(stored),
      rss_mb_after: mb(rssAfter),
    };
    log(`  durable 202s: ${found}/${accepted.length} (rows: ${stored.size}, distinct hashes: ${out[sync].hashes.distinct_hashes}, stopped with ${stopSignal})`);
  }
  return out;
}

/** accept-distinct: POST /create-async with a new username and password on every request (synchronous=FULL, the default). */
async function phaseAcceptDistinct(opts) {
  const moto = await idleMoto();
  const service = await startService(moto.url, {
    env: { EC2_API_PAUSED: '1', EC2_API_MAX_QUEUED: '1000000' },
    nodeArgs: profileArgs(opts, 'accept-distinct'),
    name: 'service-accept-distinct',
  });
  const nextLogin = loginSource();
  const accepted = [];
  const sample = new Map();
  const out = {};
  for (const connections of [16, 64]) {
    log(`accept, a new password on every request: ${connections} connections × ${opts.duration} s`);
    const { value: result, split } = await withThreadSplit(service.pid, () =>
      cannon({
        url: service.url,
        connections,
        duration: opts.duration,
        requests: distinctCreateRequests(nextLogin, { accepted, sample }),
      }),
    );
    out[`c${connections}`] = { ...summarizeCannon(result), service_cpu: split };
  }
  const rssAfter = readStat(service.pid)?.rss ?? 0;
  const stopSignal = opts.profile ? 'SIGTERM' : 'SIGKILL';
  await service.stop({ signal: stopSignal });
  const stored = storedCreates(service.dbPath);
  const found = accepted.filter((id) => stored.has(id)).length;
  out.stopped_with = stopSignal;
  out.durable = { accepted_202: accepted.length, found, rows_in_tasks: stored.size, all_durable: found === accepted.length };
  out.hashes = hashCounts(stored);
  out.hashes.verified_with_openssl = verifyHashes(sample, stored);
  out.rss_mb_after = mb(rssAfter);
  log(
    `  durable 202s: ${found}/${accepted.length}; distinct hashes ${out.hashes.distinct_hashes}/${out.hashes.rows}; ` +
      `openssl agrees on ${out.hashes.verified_with_openssl.matching}/${out.hashes.verified_with_openssl.checked}`,
  );
  return out;
}

/** status: GET /status/<id> of one task, 64 connections, nothing else running. */
async function phaseStatus(opts) {
  const moto = await idleMoto();
  const service = await startService(moto.url, {
    env: { EC2_API_PAUSED: '1' },
    nodeArgs: profileArgs(opts, 'status'),
    name: 'service-status',
  });
  const id = await submitCreate(service.url);
  log(`status: 64 connections × ${opts.duration} s on /status/${id}`);
  const result = await cannon({ url: `${service.url}/status/${id}`, connections: 64, duration: opts.duration });
  await service.stop();
  return { task_id: id, ...summarizeCannon(result) };
}

/**
 * status-load: the paced status probe alone (baseline), then the same probe
 * while distinct-password creates arrive at 16 connections.
 */
async function phaseStatusLoad(opts) {
  const moto = await idleMoto();
  const service = await startService(moto.url, {
    env: { EC2_API_PAUSED: '1', EC2_API_MAX_QUEUED: '1000000' },
    nodeArgs: profileArgs(opts, 'status-load'),
    name: 'service-status-load',
  });
  const nextLogin = loginSource();
  const id = await submitCreate(service.url, nextLogin());
  const url = `${service.url}/status/${id}`;
  const probeMs = Math.max(1000, opts.duration * 1000 - 2000);
  log(`status-load: probe alone, ${PROBE.connections} connections × one request per ${PROBE.intervalMs} ms, ${Math.min(probeMs, 3000) / 1000} s`);
  const alone = await probe(url, { ...PROBE, durationMs: Math.min(probeMs, 3000) });
  log(`status-load: the same probe while distinct-password creates arrive (16 connections × ${opts.duration} s)`);
  const accepted = [];
  const threadsBefore = threadTimes(service.pid);
  const loadStarted = performance.now();
  const load = cannon({
    url: service.url,
    connections: 16,
    duration: opts.duration,
    requests: distinctCreateRequests(nextLogin, { accepted, sample: new Map() }),
  });
  // The probe starts once the load runs, and stops before it does.
  await sleep(Math.min(1000, (opts.duration * 1000 - probeMs) / 2));
  const during = await probe(url, { ...PROBE, durationMs: probeMs });
  const creates = summarizeCannon(await load);
  const split = threadSplit(service.pid, threadsBefore, threadTimes(service.pid), (performance.now() - loadStarted) / 1000);
  await service.stop();
  log(`  status p50 ${during.latency_ms.p50} ms, p99 ${during.latency_ms.p99} ms, max ${during.latency_ms.max} ms; creates ${creates.req_per_s} req/s`);
  return { task_id: id, probe_alone: alone, probe_during: during, creates, service_cpu: split };
}

/**
 * The fixed cost of one playbook run: one-task runs on a fresh service, one
 * after another. The first resolves the image (the service then reuses it for
 * an hour), the later ones do not: both are reported.
 */
async function fixedCost(opts) {
  const moto = await startMoto();
  await warmUp(moto.url);
  const service = await startService(moto.url, { nodeArgs: profileArgs(opts, 'drain-1task'), name: 'service-drain-1task' });
  const nextLogin = loginSource();
  const runs = [];
  try {
    for (let i = 0; i <= FIXED_COST_WARM_RUNS; i++) {
      const before = cpuTimes(service.pid);
      const t0 = Date.now();
      const id = await submitCreate(service.url, nextLogin());
      const { final } = await waitTerminal(service.url, [id], Date.now() + 120_000);
      const doc = final.get(id);
      if (!doc) throw new Error(`one-task run ${i + 1}: task ${id} not terminal after 120 s`);
      if (!(await waitRunsReaped(service))) throw new Error(`one-task run ${i + 1}: a playbook still runs 60 s after its task ended`);
      const after = cpuTimes(service.pid);
      runs.push({
        status: doc.status,
        error: doc.error ?? null,
        result_s: round((Date.parse(doc.finished_at) - t0) / 1000, 2),
        cpu_s: round(after.children - before.children, 2),
        service_cpu_s: round(after.self - before.self, 2),
      });
    }
  } finally {
    await service.stop();
    await moto.stop();
  }
  const warm = runs.slice(1);
  const out = {
    first: runs[0],
    later: warm,
    cpu_s_first: runs[0].cpu_s,
    cpu_s_later_median: round(median(warm.map((r) => r.cpu_s)), 2),
    result_s_later_median: round(median(warm.map((r) => r.result_s)), 2),
    all_succeeded: runs.every((r) => r.status === 'succeeded'),
  };
  log(`  one-task run: CPU ${out.cpu_s_first} s first (image lookup), ${out.cpu_s_later_median} s after (median of ${warm.length}); result in ${out.result_s_later_median} s`);
  return out;
}

/** drain: N creates (each its own login) at once on a running service, until all are terminal. */
async function phaseDrain(opts, n, fixed) {
  const moto = await startMoto();
  await warmUp(moto.url);
  const service = await startService(moto.url, { nodeArgs: profileArgs(opts, `drain-${n}`), name: `service-drain-${n}` });
  const health = await fetch(`${service.url}/healthz`).then((r) => r.json());
  const metricsBefore = await playbookRunsFromMetrics(service.url);
  const nextLogin = loginSource();
  const logins = Array.from({ length: n }, () => nextLogin());
  const sampler = startSampler(service.pid, 100);
  const cpuBefore = cpuTimes(service.pid);
  const motoCpuBefore = cpuTimes(moto.child.pid);
  log(`drain ${n}: submitting ${n} creates at once (concurrency ${process.env.EC2_API_CONCURRENCY ?? 'default'}, batch ${process.env.EC2_API_BATCH_SIZE ?? 'default'})`);

  const t0 = Date.now();
  const ids = await Promise.all(logins.map((login) => submitCreate(service.url, login)));
  const submittedMs = Date.now() - t0;
  const { final, seenAllAt } = await waitTerminal(service.url, ids, t0 + Math.max(300, n * 3) * 1000);
  const reaped = await waitRunsReaped(service);
  const cpuAfter = cpuTimes(service.pid);
  const motoCpuAfter = cpuTimes(moto.child.pid);
  const samples = sampler.stop();
  const metricsAfter = await playbookRunsFromMetrics(service.url);

  const docs = [...final.values()];
  const at = (field) => docs.map((d) => Date.parse(d[field])).filter((t) => !Number.isNaN(t));
  const lastFinished = docs.length ? Math.max(...at('finished_at')) : NaN;
  const firstFinished = docs.length ? Math.min(...at('finished_at')) : NaN;
  const firstStarted = docs.length ? Math.min(...at('started_at')) : NaN;
  const counts = await instancesPerTask(moto.url, ids);
  await service.stop();
  await moto.stop();
  const batches = batchSizes(service.dbPath);

  // Runs in order of start; those started before the first one ended had no image cached (they look it up).
  const runs = [...samples.playbookRuns.values()].sort((a, b) => a.firstSeen - b.firstSeen);
  const firstEnd = runs.length ? Math.min(...runs.map((r) => r.endedBy ?? r.lastSeen)) : null;
  const coldRuns = runs.filter((r) => r.firstSeen <= firstEnd).length;
  const childCpu = cpuAfter.children - cpuBefore.children;
  // How many runs went side by side: the mean over the time any ran (sum of run times / span), and the most at one time.
  const spans = runs.map((r) => [r.firstSeen, r.endedBy ?? r.lastSeen]);
  const span = spans.length ? Math.max(...spans.map((x) => x[1])) - Math.min(...spans.map((x) => x[0])) : 0;
  const runsAtOnce = {
    mean: span > 0 ? round(spans.reduce((sum, [a, b]) => sum + (b - a), 0) / span, 2) : null,
    max: Math.max(0, ...spans.map(([a]) => spans.filter(([c, d]) => c <= a && a < d).length)),
  };
  const fixedCpu = fixed ? coldRuns * fixed.cpu_s_first + (runs.length - coldRuns) * fixed.cpu_s_later_median : null;
  const out = {
    tasks: n,
    concurrency: process.env.EC2_API_CONCURRENCY ?? 'service default',
    batch_size: process.env.EC2_API_BATCH_SIZE ?? 'service default',
    submit_s: round(submittedMs / 1000, 2),
    first_started_s: docs.length ? round((firstStarted - t0) / 1000, 2) : null,
    first_result_s: docs.length ? round((firstFinished - t0) / 1000, 2) : null,
    last_result_s: seenAllAt ? round((lastFinished - t0) / 1000, 2) : null,
    seconds_seen_by_poll: seenAllAt ? round((seenAllAt - t0) / 1000, 2) : null,
    completed: docs.length,
    succeeded: docs.filter((d) => d.status === 'succeeded').length,
    failed: docs.filter((d) => d.status !== 'succeeded').length,
    first_error: docs.find((d) => d.status !== 'succeeded')?.error ?? null,
    attempts_over_1: docs.filter((d) => (d.attempts ?? 1) > 1).length,
    instances: counts,
    playbook_runs: runs.length,
    batch_sizes: batches,
    playbook_runs_metrics: metricsBefore && metricsAfter ? metricsAfter.total - metricsBefore.total : null,
    playbook_runs_cold: coldRuns,
    runs_at_once: runsAtOnce,
    runs_reaped: reaped,
    runs_timeline: runs.map((r) => ({
      start_s: round((r.firstSeen - t0) / 1000, 1),
      end_s: round(((r.endedBy ?? r.lastSeen) - t0) / 1000, 1),
      cpu_s: r.cpu !== null ? round(r.cpu, 2) : null,
      ...(r.cpuShared ? { cpu_shared_s: round(r.cpuShared.cpu, 2), ended_with: r.cpuShared.runs } : {}),
    })),
    // Should equal cpu_s.playbooks_total: the part of it the timeline could attribute to runs.
    runs_cpu_attributed_s: round(runs.reduce((sum, r) => sum + (r.cpu ?? (r.cpuShared ? r.cpuShared.cpu / r.cpuShared.runs : 0)), 0), 2),
    playbook_wall_s_mean: runs.length ? round(runs.reduce((s, r) => s + ((r.endedBy ?? r.lastSeen) - r.firstSeen), 0) / runs.length / 1000, 2) : null,
    cpu_s: {
      service: round(cpuAfter.self - cpuBefore.self, 2),
      playbooks_total: round(childCpu, 2),
      per_playbook_run: runs.length ? round(childCpu / runs.length, 2) : null,
      per_task: round(childCpu / n, 3),
      fixed_cost_of_runs: round(fixedCpu, 2),
      per_task_beyond_fixed: fixed ? round((childCpu - fixedCpu) / n, 3) : null,
      moto: round(motoCpuAfter.self - motoCpuBefore.self, 2),
      wall_x_cores: round(((lastFinished - t0) / 1000) * (os.availableParallelism?.() ?? os.cpus().length), 1),
    },
    peak_rss_mb: { service: mb(samples.peakRss), descendants_total: mb(samples.peakDescendantRss), descendants_at_peak: samples.peakDescendantCount },
    max_descendant_processes: samples.peakDescendantProcesses,
    healthz_before: { queued: health.queued, running_playbooks: health.running_playbooks },
  };
  log(
    `  ${out.succeeded}/${n} succeeded; first result ${out.first_result_s} s, last ${out.last_result_s} s; ${out.playbook_runs} runs; ` +
      `ansible CPU ${out.cpu_s.playbooks_total} s (${out.cpu_s.per_task}/task, ${out.cpu_s.per_task_beyond_fixed} beyond fixed); ` +
      `instances: ${counts.tasksWithOne} with one, ${counts.missing} missing, ${counts.duplicates} doubled`,
  );
  return out;
}

/** sync: POST /create wall time vs the same playbook run by hand, alternating. */
async function phaseSync(opts) {
  const moto = await startMoto();
  await warmUp(moto.url);
  const service = await startService(moto.url, { nodeArgs: profileArgs(opts, 'sync'), name: 'service-sync' });
  const hash = execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: `${FIXED_LOGIN.password}\n`, encoding: 'utf8' }).trim();
  const ansible = process.env.EC2_API_ANSIBLE_PLAYBOOK?.trim() || fromVenv('ansible-playbook');
  const env = safeEnv(moto.url);

  // CPU of a run: the bench reaps the by-hand ansible-playbook, the service reaps its own.
  const handCpu = [];
  const apiCpu = [];
  const byHand = async () => {
    const taskId = `bench-hand-${randomUUID()}`;
    const before = cpuTimes(process.pid).children;
    const run = await runToEnd(
      ansible,
      ['-i', 'inventory', 'playbooks/create.yml', '-e', `task_id=${taskId}`, '-e', `username=${FIXED_LOGIN.username}`, '-e', `password_hash=${hash}`],
      { env },
    );
    // A failed task makes the run exit non-zero; and the instance must be there, once.
    if (run.code !== 0) throw new Error(`ansible-playbook by hand exited ${run.code}:\n${run.output.slice(-1500)}`);
    const launched = (await instanceIdsOfTask(moto.url, taskId)).length;
    if (launched !== 1) throw new Error(`ansible-playbook by hand exited 0 but left ${launched} instances tagged ${taskId}:\n${run.output.slice(-1500)}`);
    handCpu.push(cpuTimes(process.pid).children - before);
    return run.seconds;
  };
  const viaApi = async () => {
    const before = cpuTimes(service.pid).children;
    const started = process.hrtime.bigint();
    const response = await fetch(`${service.url}/create`, { method: 'POST', headers: JSON_HEADERS, body: BODY });
    const body = await response.json();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (response.status !== 200) throw new Error(`POST /create → ${response.status} ${JSON.stringify(body)}`);
    // The answer can come before the run has ended (a task ends with its result): wait for it to be reaped.
    await waitRunsReaped(service, 30_000);
    apiCpu.push(cpuTimes(service.pid).children - before);
    const doc = await getStatus(service.url, body.task_id);
    const queueMs = Date.parse(doc.started_at) - Date.parse(doc.created_at);
    const runMs = Date.parse(doc.finished_at) - Date.parse(doc.started_at);
    return { seconds, queueMs, runMs };
  };

  log('sync: warm-up (one by-hand run, one /create; not timed)');
  await byHand();
  await viaApi();
  handCpu.length = 0;
  apiCpu.length = 0;
  const api = [];
  const hand = [];
  for (let i = 0; i < opts.runs; i++) {
    const order = i % 2 === 0 ? ['api', 'hand'] : ['hand', 'api'];
    for (const which of order) {
      if (which === 'api') api.push(await viaApi());
      else hand.push(await byHand());
    }
    log(`  run ${i + 1}/${opts.runs}: /create ${api.at(-1).seconds.toFixed(2)} s, by hand ${hand.at(-1).toFixed(2)} s`);
  }
  await service.stop();
  await moto.stop();
  const apiMedian = median(api.map((r) => r.seconds));
  const handMedian = median(hand);
  return {
    runs: opts.runs,
    api_s: api.map((r) => round(r.seconds, 3)),
    hand_s: hand.map((s) => round(s, 3)),
    api_median_s: round(apiMedian, 3),
    hand_median_s: round(handMedian, 3),
    ratio: round(apiMedian / handMedian, 3),
    cpu_s_median: { api_playbook: round(median(apiCpu), 2), hand_playbook: round(median(handCpu), 2) },
    api_breakdown_median_ms: {
      queued_to_started: median(api.map((r) => r.queueMs)),
      started_to_finished: median(api.map((r) => r.runMs)),
    },
  };
}

/** memory: RSS idle, and with 1,000 tasks queued on a paused service. */
async function phaseMemory(opts) {
  const moto = await idleMoto();
  const service = await startService(moto.url, {
    env: { EC2_API_PAUSED: '1', EC2_API_MAX_QUEUED: '1000000' },
    nodeArgs: profileArgs(opts, 'memory'),
    name: 'service-memory',
  });
  await sleep(2000);
  const idle = readStat(service.pid).rss;
  const sampler = startSampler(service.pid, 100);
  log('memory: 1,000 × POST /create-async (16 at a time)');
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < 1000) {
        next++;
        await submitCreate(service.url);
      }
    }),
  );
  await sleep(2000);
  const queuedRss = readStat(service.pid).rss;
  const samples = sampler.stop();
  const health = await fetch(`${service.url}/healthz`).then((r) => r.json());
  await service.stop();
  return { idle_mb: mb(idle), queued_1000_mb: mb(queuedRss), peak_while_submitting_mb: mb(samples.peakRss), healthz_queued: health.queued };
}

// ---------------------------------------------------------------- checks --

function evaluate(results) {
  const rows = []; // [phase, metric, value, target, pass|null]
  const add = (phase, metric, value, target = '', pass = null) => rows.push({ phase, metric, value, target, pass });
  const { accept, accept_distinct: distinct, status, status_load: statusLoad, drain, sync, memory } = results;
  const bad = (r) => r.non2xx + r.errors;
  const cores = (c) => `${c.cores.main_thread} · ${c.cores.busiest_other_thread} · ${c.cores.rest}`;
  const badText = (r) => `${r.non2xx} · ${r.errors}${r.timeouts ? ` (${r.timeouts} timed out)` : ''}`;

  if (accept) {
    for (const [sync, r] of Object.entries(accept)) {
      const label = `accept fixed ${sync}`;
      add(label, '16 conn req/s · p50 · p99', `${r.c16.req_per_s} · ${r.c16.latency_ms.p50} ms · ${r.c16.latency_ms.p99} ms`);
      add(label, '16 conn non-2xx · errors', badText(r.c16), '0 · 0', bad(r.c16) === 0);
      add(label, '64 conn req/s', r.c64.req_per_s, '≥ 5,000', r.c64.req_per_s >= 5000);
      add(label, '64 conn p50 · p99', `${r.c64.latency_ms.p50} ms · ${r.c64.latency_ms.p99} ms`, 'p99 ≤ 20 ms', r.c64.latency_ms.p99 <= 20);
      add(label, '64 conn non-2xx · errors', badText(r.c64), '0 · 0', bad(r.c64) === 0);
      add(label, `durable 202s (after ${r.stopped_with === 'SIGKILL' ? 'kill -9' : 'SIGTERM'})`, `${r.durable.found}/${r.durable.accepted_202}`, 'all', r.durable.all_durable);
      add(label, 'distinct hashes stored / rows', `${r.hashes.distinct_hashes} / ${r.hashes.rows}`);
    }
  }
  if (distinct) {
    const label = 'accept distinct';
    const v = distinct.hashes.verified_with_openssl;
    add(label, '16 conn req/s', distinct.c16.req_per_s, `≥ ${TARGETS.acceptDistinct16}`, distinct.c16.req_per_s >= TARGETS.acceptDistinct16);
    add(label, '16 conn p50 · p99', `${distinct.c16.latency_ms.p50} ms · ${distinct.c16.latency_ms.p99} ms`);
    add(label, '16 conn non-2xx · errors', badText(distinct.c16), '0 · 0', bad(distinct.c16) === 0);
    add(label, '16 conn service CPU, cores: main · hash thread · rest', cores(distinct.c16.service_cpu));
    add(label, '64 conn req/s · p50 · p99', `${distinct.c64.req_per_s} · ${distinct.c64.latency_ms.p50} ms · ${distinct.c64.latency_ms.p99} ms`);
    add(label, '64 conn non-2xx · errors', badText(distinct.c64), '0 · 0', bad(distinct.c64) === 0);
    add(label, `durable 202s (after ${distinct.stopped_with === 'SIGKILL' ? 'kill -9' : 'SIGTERM'})`, `${distinct.durable.found}/${distinct.durable.accepted_202}`, 'all', distinct.durable.all_durable);
    add(label, 'distinct hashes stored / rows', `${distinct.hashes.distinct_hashes} / ${distinct.hashes.rows}`, 'all', distinct.hashes.distinct_hashes === distinct.hashes.rows);
    add(label, 'hashes = openssl passwd -6 (sample)', `${v.matching}/${v.checked}`, 'all', v.checked > 0 && v.matching === v.checked);
  }
  if (status) {
    add('status', '64 conn req/s', status.req_per_s, '≥ 10,000', status.req_per_s >= 10000);
    add('status', '64 conn p50 · p99', `${status.latency_ms.p50} ms · ${status.latency_ms.p99} ms`, 'p99 ≤ 10 ms', status.latency_ms.p99 <= 10);
    add('status', 'non-2xx · errors', badText(status), '0 · 0', bad(status) === 0);
  }
  if (statusLoad) {
    const { probe_alone: alone, probe_during: during, creates } = statusLoad;
    const label = 'status under load';
    const ms = (l) => `${l.p50} · ${l.p99} · ${l.max} ms`;
    add(label, `probe alone p50 · p99 · max (${alone.rate_per_s}/s)`, ms(alone.latency_ms));
    add(label, 'with distinct creates: p50 · p99 · max', ms(during.latency_ms), `p99 ≤ ${TARGETS.statusLoadP99} ms`, during.latency_ms.p99 !== null && during.latency_ms.p99 <= TARGETS.statusLoadP99);
    add(label, '  status requests · polls held up · bad', `${during.requests} · ${during.late_slots} · ${during.non2xx + during.errors}`, '0 bad', during.non2xx + during.errors === 0);
    add(label, '  creates meanwhile: req/s · p99 · bad', `${creates.req_per_s} · ${creates.latency_ms.p99} ms · ${bad(creates)}`);
    add(label, '  service CPU, cores: main · hash thread · rest', cores(statusLoad.service_cpu));
  }
  if (drain?.fixed_cost) {
    const f = drain.fixed_cost;
    add('drain 1-task run', 'ansible CPU s: first · later (median)', `${f.cpu_s_first} · ${f.cpu_s_later_median}`);
    add('drain 1-task run', 'result s (later, median)', f.result_s_later_median);
    add('drain 1-task run', 'succeeded', f.all_succeeded ? 'all' : 'NOT ALL', 'all', f.all_succeeded);
  }
  for (const [n, r] of Object.entries(drain ?? {})) {
    if (n === 'fixed_cost') continue;
    const label = `drain ${n}`;
    const last = TARGETS.drainLastS[n];
    const first = TARGETS.drainFirstS[n];
    add(label, 'all 202s after (s)', r.submit_s);
    add(label, 'first result (s)', r.first_result_s ?? 'none', first ? `≤ ${first} s` : '', first ? r.first_result_s !== null && r.first_result_s <= first : null);
    add(label, 'last result (s)', r.last_result_s ?? 'timed out', last ? `≤ ${last} s` : '', last ? r.last_result_s !== null && r.last_result_s <= last : null);
    add(label, 'succeeded', `${r.succeeded}/${n}`, `${n}/${n}`, r.succeeded === Number(n));
    add(
      label,
      'instances: one per task / missing / doubled',
      `${r.instances.tasksWithOne} / ${r.instances.missing} / ${r.instances.duplicates}`,
      `${n} / 0 / 0`,
      r.instances.tasksWithOne === Number(n) && r.instances.missing === 0 && r.instances.duplicates === 0,
    );
    add(label, 'playbook runs: seen · /metrics · cold', `${r.playbook_runs} · ${r.playbook_runs_metrics ?? '?'} · ${r.playbook_runs_cold}`);
    add(label, 'tasks per batch', r.batch_sizes.join(' '));
    add(label, 'runs side by side: mean · most', `${r.runs_at_once.mean} · ${r.runs_at_once.max}`);
    add(label, 'ansible CPU s: total · per task', `${r.cpu_s.playbooks_total} · ${r.cpu_s.per_task}`);
    add(
      label,
      'ansible CPU s per task beyond fixed cost',
      r.cpu_s.per_task_beyond_fixed ?? 'n/a',
      `≤ ${TARGETS.cpuPerTaskBeyondFixed}`,
      r.cpu_s.per_task_beyond_fixed === null ? null : r.cpu_s.per_task_beyond_fixed <= TARGETS.cpuPerTaskBeyondFixed,
    );
    add(label, 'CPU s service + moto / wall × cores', `${r.cpu_s.service} + ${r.cpu_s.moto} / ${r.cpu_s.wall_x_cores}`);
    add(label, 'peak RSS service · descendants', `${r.peak_rss_mb.service} MB · ${r.peak_rss_mb.descendants_total} MB`);
  }
  if (sync) {
    add('sync', `median /create · by hand (${sync.runs} runs)`, `${sync.api_median_s} s · ${sync.hand_median_s} s`);
    add('sync', 'playbook CPU s median: API · by hand', `${sync.cpu_s_median.api_playbook} · ${sync.cpu_s_median.hand_playbook}`);
    add('sync', '/create: queued→started · started→finished', `${sync.api_breakdown_median_ms.queued_to_started} ms · ${sync.api_breakdown_median_ms.started_to_finished} ms`);
    add('sync', 'ratio /create ÷ by hand', `${sync.ratio}×`, `≤ ${TARGETS.syncRatio.toFixed(2)}×`, sync.ratio <= TARGETS.syncRatio);
  }
  if (memory) {
    add('memory', 'RSS idle', `${memory.idle_mb} MB`, '≤ 100 MB', memory.idle_mb <= 100);
    add('memory', 'RSS with 1,000 queued', `${memory.queued_1000_mb} MB`, '≤ 100 MB', memory.queued_1000_mb <= 100);
  }
  return rows;
}

function printTable(rows) {
  const cells = rows.map((r) => [r.phase, r.metric, String(r.value), r.target, r.pass === null ? '' : r.pass ? 'PASS' : 'MISS']);
  const header = ['phase', 'metric', 'value', 'target', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => c.map((v, i) => (i === 2 ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  let last = null;
  for (const c of cells) {
    console.log(line(c[0] === last ? ['', ...c.slice(1)] : c));
    last = c[0];
  }
}

function machine() {
  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  let ansible = null;
  try {
    ansible = execFileSync(process.env.EC2_API_ANSIBLE_PLAYBOOK?.trim() || fromVenv('ansible-playbook'), ['--version'], { encoding: 'utf8' }).split('\n')[0];
  } catch {
    // reported as null
  }
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu,
    memory_gb: round(os.totalmem() / 1024 ** 3, 1),
    node: process.version,
    kernel: os.release(),
    ansible,
    git: gitRevision(),
  };
}

// ------------------------------------------------------------------- main --

/** What else the machine did during a phase: once a second, and the CPU not ours from /proc/stat. */
function contentionMonitor() {
  const phases = {};
  let current = null;
  let start = null;
  const timer = setInterval(() => {
    if (!current) return;
    const found = otherLoad([]);
    const c = phases[current];
    c.seconds++;
    if (found.tap) c.seconds_with_tap++;
    if (found.ansible) c.seconds_with_foreign_ansible++;
    c.max_foreign_ansible = Math.max(c.max_foreign_ansible, found.ansible);
    c.max_loadavg_1m = Math.max(c.max_loadavg_1m, round(os.loadavg()[0], 2));
  }, 1000);
  timer.unref();
  const snapshot = () => ({ machine: machineCpu(), ours: treeCpu(process.pid), at: Date.now() });
  return {
    phases,
    begin(name) {
      current = name;
      phases[name] = { seconds: 0, seconds_with_tap: 0, seconds_with_foreign_ansible: 0, max_foreign_ansible: 0, max_loadavg_1m: round(os.loadavg()[0], 2) };
      start = snapshot();
    },
    end() {
      const stop = snapshot();
      const c = phases[current];
      const wall = (stop.at - start.at) / 1000;
      const busy = stop.machine.busy - start.machine.busy;
      const ours = stop.ours - start.ours;
      c.wall_s = round(wall, 1);
      c.cpu_s_available = round(wall * os.cpus().length, 1);
      c.cpu_s_ours = round(ours, 1);
      // Busy CPU of the machine not spent by the bench or anything it started (other engineers' work, the kernel).
      c.cpu_s_others = round(Math.max(0, busy - ours), 1);
      c.cpu_s_steal = round(stop.machine.steal - start.machine.steal, 1);
      current = null;
    },
    stop() {
      clearInterval(timer);
    },
  };
}

function printContention(phases) {
  const rows = Object.entries(phases).map(([name, c]) => [
    name,
    String(c.wall_s),
    `${c.cpu_s_ours} / ${c.cpu_s_others} / ${c.cpu_s_steal} of ${c.cpu_s_available}`,
    String(c.max_loadavg_1m),
    `${c.seconds_with_tap}/${c.seconds} s`,
    `${c.seconds_with_foreign_ansible}/${c.seconds} s (≤ ${c.max_foreign_ansible})`,
  ]);
  const header = ['phase', 'wall s', 'CPU s: bench / others / steal of available', 'max load', 'tap seen', 'foreign ansible-playbook seen'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (c) => c.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const startedAt = new Date();
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  if (opts.profile) fs.mkdirSync(PROFILE_DIR, { recursive: true });
  const build = ensureBuilt(log);
  const host = machine();
  const loadBefore = { loadavg_1m: round(os.loadavg()[0], 2), other_processes: otherLoad([]) };
  console.log(
    `ec2-api bench ${startedAt.toISOString()}  ·  ${host.nproc} × ${host.cpu}  ·  node ${host.node}  ·  ${host.ansible ?? 'ansible ?'}  ·  ${host.git ?? ''}`,
  );
  console.log(`load before: ${loadBefore.loadavg_1m} (1 min); other processes: ${JSON.stringify(loadBefore.other_processes)}`);
  if (loadBefore.other_processes.tap) console.log('NOTE: tap test processes are running: results compete with them for CPU.');
  if (loadBefore.other_processes.ansible) console.log('NOTE: ansible-playbook processes not started by this bench are running.');

  const results = {};
  const phaseTimes = {};
  const contention = contentionMonitor();
  const timed = async (name, fn) => {
    const t = Date.now();
    contention.begin(name);
    try {
      return await fn();
    } finally {
      contention.end();
      phaseTimes[name] = round((Date.now() - t) / 1000, 1);
    }
  };
  const want = (phase) => opts.only.includes(phase);
  if (want('accept')) results.accept = await timed('accept', () => phaseAccept(opts));
  if (want('accept-distinct')) results.accept_distinct = await timed('accept-distinct', () => phaseAcceptDistinct(opts));
  if (want('status')) results.status = await timed('status', () => phaseStatus(opts));
  if (want('status-load')) results.status_load = await timed('status-load', () => phaseStatusLoad(opts));
  if (want('memory')) results.memory = await timed('memory', () => phaseMemory(opts));
  if (sharedMoto) await sharedMoto.stop();
  if (want('drain')) {
    results.drain = {};
    log('drain: the fixed cost of a run (one-task runs, one after another)');
    results.drain.fixed_cost = await timed('drain 1-task runs', () => fixedCost(opts));
    for (const n of opts.drain) results.drain[n] = await timed(`drain ${n}`, () => phaseDrain(opts, n, results.drain.fixed_cost));
  }
  if (want('sync')) results.sync = await timed('sync', () => phaseSync(opts));
  contention.stop();

  const loadAfter = { loadavg_1m: round(os.loadavg()[0], 2), other_processes: otherLoad([]) };
  let profiles;
  if (opts.profile) {
    profiles = fs
      .readdirSync(PROFILE_DIR)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => topSelfTime(path.join(PROFILE_DIR, f), 15));
  }

  const rows = evaluate(results);
  console.log('');
  console.log(`ec2-api bench — ${startedAt.toISOString()} — ${host.nproc} × ${host.cpu}, node ${host.node}, ${host.git ?? ''}`);
  console.log('');
  printTable(rows);
  console.log('');
  console.log('contention (CPU s from /proc/stat: the bench and all it started / everything else / stolen by the hypervisor):');
  printContention(contention.phases);
  console.log('');
  console.log(`phase seconds: ${JSON.stringify(phaseTimes)}; load after: ${loadAfter.loadavg_1m}; other processes: ${JSON.stringify(loadAfter.other_processes)}`);
  const busy = Object.entries(contention.phases).filter(([, c]) => c.seconds_with_tap || c.cpu_s_others > 0.1 * c.cpu_s_available);
  if (busy.length) {
    console.log(
      'NOTE: other work ran during: ' +
        busy.map(([name, c]) => `${name} (${c.cpu_s_others} CPU s of ${c.cpu_s_available}, tap ${c.seconds_with_tap}/${c.seconds} s, load ≤ ${c.max_loadavg_1m})`).join('; '),
    );
  }
  if (profiles) for (const p of profiles) console.log(`\n${formatTop(p)}`);

  const report = {
    date: startedAt.toISOString(),
    machine: host,
    build,
    options: { ...opts, env: Object.fromEntries(Object.entries(process.env).filter(([k]) => /^EC2_API_/.test(k))) },
    load: { before: loadBefore, after: loadAfter, during: contention.phases },
    phase_seconds: phaseTimes,
    results,
    checks: rows.filter((r) => r.pass !== null).map(({ phase, metric, value, target, pass }) => ({ phase, metric, value, target, pass })),
    ...(profiles ? { profiles } : {}),
  };
  const file = path.join(RESULTS_DIR, 'latest.json');
  fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  fs.writeFileSync(path.join(RESULTS_DIR, `bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`), `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwrote ${path.relative(projectRoot, file)}`);
  const missed = report.checks.filter((c) => !c.pass).length;
  console.log(`${report.checks.length - missed}/${report.checks.length} targets met`);
}

// Ctrl-C / SIGTERM: stop the load, then every child (service, moto, playbooks).
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (interrupted) {
      killAllNow();
      process.exit(130);
    }
    interrupted = true;
    console.error(`\n${signal}: stopping the bench's processes…`);
    for (const instance of liveCannons) instance.stop();
    stopAll().finally(() => process.exit(130));
  });
}
process.on('exit', killAllNow);

main()
  .then(() => stopAll())
  .catch(async (error) => {
    console.error(`bench failed: ${error?.stack ?? error}`);
    await stopAll();
    process.exitCode = 1;
  });
