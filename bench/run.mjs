#!/usr/bin/env node
// ec2-api benchmark: `npm run bench [-- --only accept,drain --duration 5 --runs 3 --drain 20,50 --profile]`.
//
// Starts its own moto server(s) and the BUILT service (node dist/server.js)
// as child processes, never real AWS, runs each phase (bench/phases/, one a
// file), prints a table with the targets of bench/targets.mjs and writes
// bench/results/latest.json. See bench/README.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ensureBuilt } from './lib/build.mjs';
import { stopCannons } from './lib/cannon.mjs';
import { otherLoad } from './lib/procfs.mjs';
import { formatTop, topSelfTime } from './lib/profile.mjs';
import { killAllNow, projectRoot, stopAll } from './lib/procs.mjs';
import { contentionMonitor, machine, printContention, printTable } from './lib/report.mjs';
import { PROFILE_DIR, RESULTS_DIR, stopIdleMoto } from './lib/service.mjs';
import { log, round } from './lib/stats.mjs';
import { PHASES } from './phases/index.mjs';

// ---------------------------------------------------------------- options --

const NAMES = PHASES.map((phase) => phase.name);
const USAGE = `usage: npm run bench -- [--only PHASE,…] [--duration S] [--runs N] [--drain N,N] [--profile]
  --only      phases to run, comma-separated (default: all): ${NAMES.join(', ')}
  --duration  seconds per autocannon run (default 10)
  --runs      /create and by-hand playbook runs each for sync (default 5)
  --drain     task counts for drain (default 20,50,200)
  --profile   start the service with --cpu-prof (profiles in bench/results/profiles/);
              accept phases then stop it with SIGTERM instead of kill -9 so the profile is written
  --help      this text
EC2_API_CONCURRENCY, EC2_API_BATCH_SIZE and other EC2_API_* settings pass through to the service.
What each phase does and its targets: bench/README.md and bench/targets.mjs.`;

class UsageError extends Error {}

/** A whole number ≥ 1 given to `--name`. */
function positive(name, raw) {
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || n < 1) throw new UsageError(`--${name} must be a whole number ≥ 1, got "${raw}"`);
  return n;
}

function options(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        only: { type: 'string' },
        duration: { type: 'string', default: '10' },
        runs: { type: 'string', default: '5' },
        drain: { type: 'string', default: '20,50,200' },
        profile: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    throw new UsageError(error.message);
  }
  const only = values.only === undefined ? [...NAMES] : values.only.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = only.filter((name) => !NAMES.includes(name));
  if (unknown.length) throw new UsageError(`unknown phase(s) ${unknown.join(', ')}; choose from ${NAMES.join(',')}`);
  return {
    help: values.help,
    only,
    duration: positive('duration', values.duration),
    runs: positive('runs', values.runs),
    drain: values.drain.split(',').map((n) => positive('drain', n)),
    profile: values.profile,
  };
}

// ------------------------------------------------------------------- main --

async function main() {
  let opts;
  try {
    opts = options(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`bench: ${error.message}\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (opts.help) {
    console.log(USAGE);
    return;
  }
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
  for (const phase of PHASES) {
    if (!opts.only.includes(phase.name)) continue;
    if (!phase.idleMoto) await stopIdleMoto();
    results[phase.key] = phase.timesItself ? await phase.run(opts, timed) : await timed(phase.name, () => phase.run(opts));
  }
  await stopIdleMoto();
  contention.stop();

  const loadAfter = { loadavg_1m: round(os.loadavg()[0], 2), other_processes: otherLoad([]) };
  let profiles;
  if (opts.profile) {
    profiles = fs
      .readdirSync(PROFILE_DIR)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => topSelfTime(path.join(PROFILE_DIR, f), 15));
  }

  const rows = []; // { phase, metric, value, target, pass: true | false | null (not judged) }
  const add = (phase, metric, value, target = '', pass = null) => rows.push({ phase, metric, value, target, pass });
  for (const phase of PHASES) if (results[phase.key]) phase.check(results[phase.key], add);
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
    stopCannons();
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
