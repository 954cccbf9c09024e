#!/usr/bin/env node
// Database bytes per create at steady state: `node bench/retention.mjs [--rate 2] [--minutes 5] [--retention 30s]`.
//
// The built service against its own moto (never AWS), with a short
// EC2_API_RETENTION; distinct-login creates arrive at a steady rate, and the
// database's size (file + -wal) is sampled every 5 s. Once ended tasks are
// deleted as fast as new ones arrive, the file should stop growing: the
// report gives its size then, the tasks it holds, the bytes per task held,
// and how much it still grew per create over the last half of the run
// (about 0 when the purge and the incremental vacuum keep up). Writes
// bench/results/retention-latest.json. See bench/README.md.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ensureBuilt, gitRevision } from './lib/build.mjs';
import { loginSource } from './lib/load.mjs';
import { killAllNow, projectRoot, sleep, startMoto, startService, stopAll } from './lib/procs.mjs';

function parseArgs(argv) {
  const opts = { rate: 2, minutes: 5, retention: '30s' };
  for (let i = 0; i < argv.length; i++) {
    const [name, inline] = argv[i].split('=', 2);
    const value = () => inline ?? argv[++i];
    if (name === '--rate') opts.rate = Number(value());
    else if (name === '--minutes') opts.minutes = Number(value());
    else if (name === '--retention') opts.retention = value();
    else throw new Error(`unknown option ${argv[i]}; use --rate N (creates a second), --minutes N, --retention 30s`);
  }
  if (!(opts.rate > 0) || !(opts.minutes > 0)) throw new Error('--rate and --minutes must be positive numbers');
  return opts;
}

const SAMPLE_MS = 5_000;
const fileSize = (file) => (fs.existsSync(file) ? fs.statSync(file).size : 0);

/** What the database holds now (read-only, beside the running service: WAL readers never block it). */
function contents(dbPath) {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const count = (sql) => db.prepare(sql).pluck().get();
    return {
      tasks: count('SELECT count(*) FROM tasks'),
      ended: count(`SELECT count(*) FROM tasks WHERE status IN ('succeeded', 'failed', 'canceled')`),
      events: count('SELECT count(*) FROM task_events'),
      runs: count('SELECT count(*) FROM runs'),
      free_pages: db.pragma('freelist_count', { simple: true }),
    };
  } finally {
    db.close();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  ensureBuilt((line) => console.log('·', line));
  const moto = await startMoto();
  const service = await startService(moto.url, { env: { EC2_API_RETENTION: opts.retention, LOG_LEVEL: 'warn' } });
  const nextLogin = loginSource();
  const durationMs = opts.minutes * 60_000;
  const started = Date.now();
  let submitted = 0;
  let refused = 0;
  const samples = [];

  const submitting = (async () => {
    for (let i = 0; Date.now() - started < durationMs; i++) {
      const due = started + (i * 1000) / opts.rate;
      if (due > Date.now()) await sleep(due - Date.now());
      const response = await fetch(`${service.url}/create-async`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(nextLogin()),
      }).catch(() => null);
      if (response?.status === 202) submitted++;
      else refused++;
      await response?.arrayBuffer().catch(() => undefined);
    }
  })();
  while (Date.now() - started < durationMs) {
    await sleep(SAMPLE_MS);
    const file = fileSize(service.dbPath);
    const wal = fileSize(`${service.dbPath}-wal`);
    const sample = { t_s: Math.round((Date.now() - started) / 1000), submitted, bytes: file + wal, file, wal, ...contents(service.dbPath) };
    samples.push(sample);
    console.log('·', JSON.stringify(sample));
  }
  await submitting;

  // Steady state: the second half of the run (the first holds the ramp-up to one retention's worth of tasks).
  const half = samples.filter((s) => s.t_s >= (durationMs / 1000) / 2);
  const first = half[0];
  const last = half.at(-1);
  const held = half.map((s) => s.tasks);
  const bytes = half.map((s) => s.bytes);
  const files = half.map((s) => s.file);
  const meanHeld = held.reduce((a, b) => a + b, 0) / held.length;
  const result = {
    revision: gitRevision(),
    at: new Date().toISOString(),
    options: opts,
    submitted,
    refused,
    steady: {
      from_s: first.t_s,
      to_s: last.t_s,
      creates: last.submitted - first.submitted,
      bytes_min: Math.min(...bytes),
      bytes_max: Math.max(...bytes),
      file_bytes_max: Math.max(...files),
      wal_bytes_max: Math.max(...half.map((s) => s.wal)),
      tasks_held_mean: Math.round(meanHeld),
      file_bytes_per_task_held: Math.round(Math.max(...files) / meanHeld),
      growth_bytes: last.bytes - first.bytes,
      growth_bytes_per_create: Math.round((last.bytes - first.bytes) / Math.max(1, last.submitted - first.submitted)),
    },
    samples,
  };
  const dir = path.join(projectRoot, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'retention-latest.json'), `${JSON.stringify(result, null, 2)}\n`);
  const s = result.steady;
  console.log(`\nretention ${opts.retention}, ${opts.rate} creates/s for ${opts.minutes} min: ${submitted} accepted, ${refused} refused`);
  const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;
  console.log(`steady state (${s.from_s}–${s.to_s} s, ${s.creates} creates): database + -wal ${kib(s.bytes_min)}–${kib(s.bytes_max)}`);
  console.log(`  the file at most ${kib(s.file_bytes_max)}, the -wal at most ${kib(s.wal_bytes_max)} (checkpointed every 1,000 pages)`);
  console.log(`  holding ${s.tasks_held_mean} tasks on average: ${s.file_bytes_per_task_held} bytes of the file per task held`);
  console.log(`  growth over the steady state: ${s.growth_bytes} bytes, ${s.growth_bytes_per_create} bytes per create`);
}

let stopping = false;
const cleanUp = async () => {
  if (stopping) return;
  stopping = true;
  await stopAll();
};
process.on('SIGINT', () => void cleanUp().then(() => process.exit(130)));
process.on('exit', killAllNow);
main()
  .then(cleanUp)
  .catch(async (error) => {
    console.error(error instanceof Error ? error.message : error);
    await cleanUp();
    process.exit(1);
  });
