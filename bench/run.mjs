#!/usr/bin/env node
// ec2-api benchmark: `npm run bench [-- --only accept,status --duration 5 --runs 3 --drain 20,50 --profile]`.
//
// Starts its own moto server(s) and the BUILT service (node dist/server.js)
// as child processes, never real AWS, measures five things, prints a table
// with targets and writes bench/results/latest.json. See bench/README.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { ensureBuilt, gitRevision } from './lib/build.mjs';
import { instancesPerTask, warmUp } from './lib/ec2.mjs';
import { MB, cpuTimes, otherLoad, readStat, startSampler } from './lib/procfs.mjs';
import { formatTop, topSelfTime } from './lib/profile.mjs';
import { fromVenv, killAllNow, projectRoot, runToEnd, safeEnv, sleep, startMoto, startService, stopAll } from './lib/procs.mjs';

// ---------------------------------------------------------------- options --

const PHASES = ['accept', 'status', 'drain', 'sync', 'memory'];
const USAGE = `usage: npm run bench -- [--only ${PHASES.join(',')}] [--duration S] [--runs N] [--drain N,N] [--profile]
  --only      phases to run (default: all)
  --duration  seconds per autocannon run (default 10)
  --runs      /create and by-hand playbook runs each for sync (default 5)
  --drain     task counts for drain (default 20,50)
  --profile   start the service with --cpu-prof (profiles in bench/results/profiles/);
              accept then stops it with SIGTERM instead of kill -9 so the profile is written
EC2_API_CONCURRENCY, EC2_API_BATCH_SIZE and other EC2_API_* settings pass through to the service.`;

function parseArgs(argv) {
  const opts = { only: [...PHASES], duration: 10, runs: 5, drain: [20, 50], profile: false };
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
const BODY = JSON.stringify({ username: 'suitepad', password: 'suitepad' });
const JSON_HEADERS = { 'content-type': 'application/json' };
const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

const log = (...args) => console.log('·', ...args);
const round = (n, digits = 1) => (n === null || n === undefined || Number.isNaN(n) ? null : Math.round(n * 10 ** digits) / 10 ** digits);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

let currentCannon = null;
function cannon(options) {
  return new Promise((resolve, reject) => {
    currentCannon = autocannon(options, (error, result) => {
      currentCannon = null;
      if (error) reject(error);
      else resolve(result);
    });
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

async function submitCreate(url) {
  const response = await fetch(`${url}/create-async`, { method: 'POST', headers: JSON_HEADERS, body: BODY });
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

// Moto for the phases that launch nothing (accept, status, memory): one, shared.
let sharedMoto = null;
async function idleMoto() {
  sharedMoto ??= await startMoto();
  return sharedMoto;
}

// ----------------------------------------------------------------- phases --

/** accept: POST /create-async on a paused service, then kill -9 and count what is on disk. */
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
      log(`accept, synchronous=${sync}: ${connections} connections × ${opts.duration} s`);
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
    const db = new Database(service.dbPath, { readonly: true, fileMustExist: true });
    const ids = new Set(db.prepare('SELECT id FROM tasks').pluck().all());
    db.close();
    const found = accepted.filter((id) => ids.has(id)).length;
    out[sync] = {
      db_sync: sync === 'NORMAL' ? 'NORMAL (EC2_API_DB_SYNC=NORMAL)' : 'FULL (default)',
      ...runs,
      stopped_with: stopSignal,
      durable: { accepted_202: accepted.length, found, rows_in_tasks: ids.size, all_durable: found === accepted.length },
      rss_mb_after: mb(rssAfter),
    };
    log(`  durable 202s: ${found}/${accepted.length} (rows in tasks: ${ids.size}, stopped with ${stopSignal})`);
  }
  return out;
}

/** status: GET /status/<id> of one existing task. */
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

/** drain: N creates at once on a running service, until all are terminal. */
async function phaseDrain(opts, n) {
  const moto = await startMoto();
  await warmUp(moto.url);
  const service = await startService(moto.url, { nodeArgs: profileArgs(opts, `drain-${n}`), name: `service-drain-${n}` });
  const health = await fetch(`${service.url}/healthz`).then((r) => r.json());
  const sampler = startSampler(service.pid, 100);
  const cpuBefore = cpuTimes(service.pid);
  const motoCpuBefore = cpuTimes(moto.child.pid);
  log(`drain ${n}: submitting ${n} creates at once (concurrency ${process.env.EC2_API_CONCURRENCY ?? 'default'}, batch ${process.env.EC2_API_BATCH_SIZE ?? 'default'})`);

  const t0 = Date.now();
  const ids = await Promise.all(Array.from({ length: n }, () => submitCreate(service.url)));
  const submittedMs = Date.now() - t0;

  // Poll in order, advancing past terminal tasks: about one request per tick.
  const final = new Map();
  let next = 0;
  let seenAllAt = null;
  const deadline = t0 + Math.max(300, n * 10) * 1000;
  while (next < ids.length) {
    if (Date.now() > deadline) break;
    const doc = await getStatus(service.url, ids[next]);
    if (TERMINAL.has(doc.status)) {
      final.set(ids[next], doc);
      next++;
      continue;
    }
    await sleep(100);
  }
  if (next === ids.length) seenAllAt = Date.now();
  const cpuAfter = cpuTimes(service.pid);
  const motoCpuAfter = cpuTimes(moto.child.pid);
  const samples = sampler.stop();

  const docs = [...final.values()];
  const lastFinished = docs.length ? Math.max(...docs.map((d) => Date.parse(d.finished_at))) : NaN;
  const counts = await instancesPerTask(moto.url, ids);
  await service.stop();
  await moto.stop();

  const runs = [...samples.playbookRuns.values()];
  const childCpu = cpuAfter.children - cpuBefore.children;
  const out = {
    tasks: n,
    concurrency: process.env.EC2_API_CONCURRENCY ?? '2 (default)',
    batch_size: process.env.EC2_API_BATCH_SIZE ?? '10 (default)',
    submit_s: round(submittedMs / 1000, 2),
    seconds: seenAllAt ? round((lastFinished - t0) / 1000, 2) : null,
    seconds_seen_by_poll: seenAllAt ? round((seenAllAt - t0) / 1000, 2) : null,
    completed: docs.length,
    succeeded: docs.filter((d) => d.status === 'succeeded').length,
    failed: docs.filter((d) => d.status !== 'succeeded').length,
    first_error: docs.find((d) => d.status !== 'succeeded')?.error ?? null,
    instances: counts,
    playbook_runs: runs.length,
    playbook_wall_s_mean: runs.length ? round(runs.reduce((s, r) => s + (r.lastSeen - r.firstSeen), 0) / runs.length / 1000, 2) : null,
    cpu_s: {
      service: round(cpuAfter.self - cpuBefore.self, 2),
      playbooks_total: round(childCpu, 2),
      per_playbook_run: runs.length ? round(childCpu / runs.length, 2) : null,
      per_task: round(childCpu / n, 2),
      moto: round(motoCpuAfter.self - motoCpuBefore.self, 2),
      wall_x_cores: round(((lastFinished - t0) / 1000) * (os.availableParallelism?.() ?? os.cpus().length), 1),
    },
    peak_rss_mb: { service: mb(samples.peakRss), descendants_total: mb(samples.peakDescendantRss), descendants_at_peak: samples.peakDescendantCount },
    max_descendant_processes: samples.peakDescendantProcesses,
    healthz_before: { queued: health.queued, running_playbooks: health.running_playbooks },
  };
  log(`  ${out.succeeded}/${n} succeeded in ${out.seconds} s; instances: ${counts.tasksWithOne} tasks with one, ${counts.missing} missing, ${counts.duplicates} duplicated`);
  return out;
}

/** sync: POST /create wall time vs the same playbook run by hand, alternating. */
async function phaseSync(opts) {
  const moto = await startMoto();
  await warmUp(moto.url);
  const service = await startService(moto.url, { nodeArgs: profileArgs(opts, 'sync'), name: 'service-sync' });
  const hash = execFileSync('openssl', ['passwd', '-6', 'suitepad'], { encoding: 'utf8' }).trim();
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
      ['-i', 'inventory', 'playbooks/create.yml', '-e', `task_id=${taskId}`, '-e', 'username=suitepad', '-e', `password_hash=${hash}`],
      { env },
    );
    if (run.code !== 0) throw new Error(`ansible-playbook by hand exited ${run.code}:\n${run.output.slice(-1500)}`);
    if (!/"ok": true/.test(run.output)) throw new Error(`ansible-playbook by hand reported no success:\n${run.output.slice(-1500)}`);
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

function evaluate(results, opts) {
  const rows = []; // [phase, metric, value, target, pass|null]
  const add = (phase, metric, value, target = '', pass = null) => rows.push({ phase, metric, value, target, pass });
  const { accept, status, drain, sync, memory } = results;

  if (accept) {
    for (const [sync, r] of Object.entries(accept)) {
      const label = `accept ${sync === 'FULL' ? 'FULL' : 'NORMAL'}`;
      add(label, '16 conn req/s · p50 · p99', `${r.c16.req_per_s} · ${r.c16.latency_ms.p50} ms · ${r.c16.latency_ms.p99} ms`);
      add(label, '16 conn non-2xx', r.c16.non2xx + r.c16.errors, '0', r.c16.non2xx + r.c16.errors === 0);
      add(label, '64 conn req/s', r.c64.req_per_s, '≥ 5,000', r.c64.req_per_s >= 5000);
      add(label, '64 conn p50', `${r.c64.latency_ms.p50} ms`);
      add(label, '64 conn p99', `${r.c64.latency_ms.p99} ms`, '≤ 20 ms', r.c64.latency_ms.p99 <= 20);
      add(label, '64 conn non-2xx', r.c64.non2xx + r.c64.errors, '0', r.c64.non2xx + r.c64.errors === 0);
      add(
        label,
        `durable 202s (after ${r.stopped_with === 'SIGKILL' ? 'kill -9' : 'SIGTERM'})`,
        `${r.durable.found}/${r.durable.accepted_202}`,
        'all',
        r.durable.all_durable,
      );
    }
  }
  if (status) {
    add('status', '64 conn req/s', status.req_per_s, '≥ 10,000', status.req_per_s >= 10000);
    add('status', '64 conn p50', `${status.latency_ms.p50} ms`);
    add('status', '64 conn p99', `${status.latency_ms.p99} ms`, '≤ 10 ms', status.latency_ms.p99 <= 10);
    add('status', 'non-2xx', status.non2xx + status.errors, '0', status.non2xx + status.errors === 0);
  }
  for (const [n, r] of Object.entries(drain ?? {})) {
    const target = { 20: 6, 50: 12 }[n];
    add(`drain ${n}`, 'seconds to all terminal', r.seconds ?? 'timed out', target ? `≤ ${target} s` : '', target ? r.seconds !== null && r.seconds <= target : null);
    add(`drain ${n}`, 'succeeded', `${r.succeeded}/${n}`, `${n}/${n}`, r.succeeded === Number(n));
    add(
      `drain ${n}`,
      'instances: one per task / missing / dup',
      `${r.instances.tasksWithOne} / ${r.instances.missing} / ${r.instances.duplicates}`,
      `${n} / 0 / 0`,
      r.instances.tasksWithOne === Number(n) && r.instances.missing === 0 && r.instances.duplicates === 0,
    );
    add(`drain ${n}`, 'playbook runs · CPU s per run · per task', `${r.playbook_runs} · ${r.cpu_s.per_playbook_run} · ${r.cpu_s.per_task}`);
    add(`drain ${n}`, 'CPU s playbooks + moto / wall×cores', `${r.cpu_s.playbooks_total} + ${r.cpu_s.moto} / ${r.cpu_s.wall_x_cores}`);
    add(`drain ${n}`, 'peak RSS service · descendants', `${r.peak_rss_mb.service} MB · ${r.peak_rss_mb.descendants_total} MB`);
  }
  if (sync) {
    add('sync', `median /create (${sync.runs} runs)`, `${sync.api_median_s} s`);
    add('sync', `median by hand (${sync.runs} runs)`, `${sync.hand_median_s} s`);
    add('sync', 'playbook CPU s median: API · by hand', `${sync.cpu_s_median.api_playbook} · ${sync.cpu_s_median.hand_playbook}`);
    add('sync', '/create: queued→started · started→finished', `${sync.api_breakdown_median_ms.queued_to_started} ms · ${sync.api_breakdown_median_ms.started_to_finished} ms`);
    add('sync', 'ratio', `${sync.ratio}×`, '≤ 1.03×', sync.ratio <= 1.03);
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

  const results = {};
  const phaseTimes = {};
  // Other work on the machine during each phase (the other engineer's tests…), once a second.
  const contention = {};
  let phase = null;
  const monitor = setInterval(() => {
    if (!phase) return;
    const found = otherLoad([]);
    const c = (contention[phase] ??= { seconds: 0, seconds_with_tap: 0, seconds_with_foreign_ansible: 0, max_loadavg_1m: 0 });
    c.seconds++;
    if (found.tap) c.seconds_with_tap++;
    if (found.ansible) c.seconds_with_foreign_ansible++;
    c.max_loadavg_1m = Math.max(c.max_loadavg_1m, round(os.loadavg()[0], 2));
  }, 1000);
  monitor.unref();
  const timed = async (name, fn) => {
    const t = Date.now();
    phase = name;
    const value = await fn();
    phase = null;
    phaseTimes[name] = round((Date.now() - t) / 1000, 1);
    return value;
  };
  if (opts.only.includes('accept')) results.accept = await timed('accept', () => phaseAccept(opts));
  if (opts.only.includes('status')) results.status = await timed('status', () => phaseStatus(opts));
  if (opts.only.includes('memory')) results.memory = await timed('memory', () => phaseMemory(opts));
  if (sharedMoto) await sharedMoto.stop();
  if (opts.only.includes('drain')) {
    results.drain = {};
    for (const n of opts.drain) results.drain[n] = await timed(`drain ${n}`, () => phaseDrain(opts, n));
  }
  if (opts.only.includes('sync')) results.sync = await timed('sync', () => phaseSync(opts));

  const loadAfter = { loadavg_1m: round(os.loadavg()[0], 2), other_processes: otherLoad([]) };
  let profiles;
  if (opts.profile) {
    profiles = fs
      .readdirSync(PROFILE_DIR)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => topSelfTime(path.join(PROFILE_DIR, f), 15));
  }

  const rows = evaluate(results, opts);
  console.log('');
  console.log(`ec2-api bench — ${startedAt.toISOString()} — ${host.nproc} × ${host.cpu}, node ${host.node}, ${host.git ?? ''}`);
  console.log('');
  printTable(rows);
  console.log('');
  clearInterval(monitor);
  console.log(`phase seconds: ${JSON.stringify(phaseTimes)}; load after: ${loadAfter.loadavg_1m}; other processes: ${JSON.stringify(loadAfter.other_processes)}`);
  const busy = Object.entries(contention).filter(([, c]) => c.seconds_with_tap || c.seconds_with_foreign_ansible);
  if (busy.length) {
    console.log('NOTE: other work ran during: ' + busy.map(([name, c]) => `${name} (tap ${c.seconds_with_tap}/${c.seconds} s, foreign ansible ${c.seconds_with_foreign_ansible}/${c.seconds} s, load ≤ ${c.max_loadavg_1m})`).join('; '));
  }
  if (profiles) for (const p of profiles) console.log(`\n${formatTop(p)}`);

  const report = {
    date: startedAt.toISOString(),
    machine: host,
    build,
    options: { ...opts, env: Object.fromEntries(Object.entries(process.env).filter(([k]) => /^EC2_API_/.test(k))) },
    load: { before: loadBefore, after: loadAfter, during: contention },
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
    currentCannon?.stop();
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
