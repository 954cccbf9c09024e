#!/usr/bin/env node
// SHA-512-crypt speed: `node bench/hash.mjs [--runs 5] [--n 200] [--seconds 3] [--main-ms 0.2]`.
//
// 1. ms per hash (wall and CPU, median of --runs runs of --n hashes, a new
//    random password and salt each) for each implementation in src/login/:
//    the WebAssembly kernel, the one-shot crypto.hash(), createHash (the
//    reference); and for `openssl passwd -6`, run as ONE process reading
//    --n passwords with -stdin (its start-up, measured with one password, taken off).
// 2. PasswordHasher's pool with 1 and 2 threads: latency of one hash at a
//    time, then throughput with 16 clients for --seconds each, a new password
//    per request, with and without --main-ms of event-loop CPU per request
//    (standing in for the HTTP work of the service), with the event loop's
//    delay (p99, max) meanwhile; and a fixed body (one username and password
//    for every request: what identical requests cost without a hash cache).
//
// Measures the BUILT code (dist/login/; `npm run build` first when
// dist/server.js is older than src/). Prints what else was running: on a
// shared 2-core machine, numbers taken next to a test run are not comparable.
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { ensureBuilt, gitRevision } from './lib/build.mjs';
import { CLK_TCK, allStats, otherLoad, readCmdline } from './lib/procfs.mjs';
import { projectRoot } from './lib/procs.mjs';

const USAGE = 'usage: node bench/hash.mjs [--runs 5] [--n 200] [--seconds 3] [--main-ms 0.2] [--threads 1,2]';
const opts = { runs: 5, n: 200, seconds: 3, mainMs: 0.2, threads: [1, 2] };
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  const value = () => {
    const v = process.argv[++i];
    if (v === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
    return v;
  };
  if (arg === '--runs') opts.runs = Number(value());
  else if (arg === '--n') opts.n = Number(value());
  else if (arg === '--seconds') opts.seconds = Number(value());
  else if (arg === '--main-ms') opts.mainMs = Number(value());
  else if (arg === '--threads') opts.threads = value().split(',').map(Number);
  else if (arg === '--help' || arg === '-h') {
    console.log(USAGE);
    process.exit(0);
  } else throw new Error(`unknown option ${arg}\n${USAGE}`);
}

ensureBuilt((line) => console.log(line));
const dist = (file) => new URL(`file://${path.join(projectRoot, 'dist', 'login', file)}`).href;
const { sha512CryptUsing, fastestImplementation } = await import(dist('sha512-crypt.js'));
const { PasswordHasher } = await import(dist('hasher.js'));

// ------------------------------------------------------------- helpers --

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (x, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : String(x));
const CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#%&*+,.:;=?@^_~';
/** A password like a user's: 8–24 printable ASCII characters. */
const randomPassword = () => Array.from({ length: randomInt(8, 25) }, () => CHARS[randomInt(CHARS.length)]).join('');
const SALT = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const randomSalt = () => Array.from({ length: 16 }, () => SALT[randomInt(64)]).join('');
const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

/** Busy and total CPU seconds of the whole machine so far (/proc/stat, all cores). */
function machineCpu() {
  const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, x) => sum + x, 0);
  const idle = fields[3] + (fields[4] ?? 0); // idle + iowait
  return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
}

/** CPU seconds per process over a stretch of time: the top few that are not this bench. */
function busiest(before, after, top = 5) {
  const start = new Map(before.map((s) => [s.pid, s.utime + s.stime]));
  return after
    .filter((s) => s.pid !== process.pid && start.has(s.pid))
    .map((s) => ({ pid: s.pid, cpu: s.utime + s.stime - start.get(s.pid), cmd: readCmdline(s.pid).join(' ').slice(0, 90) || s.comm }))
    .filter((p) => p.cpu > 0.05)
    .sort((a, b) => b.cpu - a.cpu)
    .slice(0, top);
}

// ------------------------------------------------------------- header --

const startedAt = new Date();
const statsBefore = allStats();
const machineBefore = machineCpu();
const selfBefore = process.cpuUsage();
const cpuModel = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(`SHA-512-crypt bench, ${startedAt.toISOString()}, ${gitRevision() ?? 'no git'}`);
console.log(`node ${process.version}, ${os.availableParallelism()} cores (${cpuModel}), load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const others = otherLoad([]);
console.log(`also running: ${Object.entries(others).map(([k, v]) => `${v} ${k}`).join(', ')} (tap runners, ansible-playbook, moto, other node processes)`);
console.log(`sha512Crypt() uses: ${fastestImplementation()}\n`);

const results = { startedAt, node: process.version, cores: os.availableParallelism(), cpuModel, loadBefore: os.loadavg(), others, opts };

// ---------------------------------------------- 1. one thread, per hash --

function measure(hashOnce, n) {
  for (let i = 0; i < Math.min(20, n); i++) hashOnce(randomPassword(), randomSalt()); // warm-up (V8 tiers)
  const wall = [];
  const cpu = [];
  for (let run = 0; run < opts.runs; run++) {
    const inputs = Array.from({ length: n }, () => [randomPassword(), randomSalt()]);
    const c0 = cpuMs();
    const t0 = performance.now();
    for (const [password, salt] of inputs) hashOnce(password, salt);
    wall.push((performance.now() - t0) / n);
    cpu.push((cpuMs() - c0) / n);
  }
  return { wall: median(wall), cpu: median(cpu), wallRuns: wall, cpuRuns: cpu };
}

let childCpuMs = 0; // openssl's, to tell it from other processes' in the footer

/** openssl passwd -6 over `passwords` in one process: wall ms and CPU ms (its own, from the shell's `times`). */
function opensslRun(passwords) {
  const t0 = performance.now();
  const result = spawnSync('sh', ['-c', 'openssl passwd -6 -salt "$1" -stdin >/dev/null && times', 'sh', randomSalt()], {
    input: passwords.join('\n') + '\n',
    encoding: 'utf8',
  });
  const wall = performance.now() - t0;
  if (result.status !== 0) throw new Error(`openssl passwd failed: ${result.stderr}`);
  // `times`: the shell's user/system, then its children's ("0m1.234s 0m0.010s").
  const line = result.stdout.trim().split('\n').pop();
  const [user, system] = [...line.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60_000 + Number(m[2]) * 1000);
  childCpuMs += user + system;
  return { wall, cpu: user + system };
}

function measureOpenssl(n) {
  const wall = [];
  const cpu = [];
  opensslRun([randomPassword()]);
  for (let run = 0; run < opts.runs; run++) {
    const one = opensslRun([randomPassword()]);
    const many = opensslRun(Array.from({ length: n }, randomPassword));
    wall.push((many.wall - one.wall) / (n - 1));
    cpu.push((many.cpu - one.cpu) / (n - 1));
  }
  return { wall: median(wall), cpu: median(cpu), wallRuns: wall, cpuRuns: cpu };
}

console.log(`1. ms per hash, one thread (median of ${opts.runs} runs; 5,000 rounds; random 8–24-character passwords)`);
console.log('   implementation                    wall ms   CPU ms   runs (wall)');
const single = {};
const rows = [
  ['wasm', 'WebAssembly kernel', opts.n],
  ['oneshot', 'crypto.hash() one-shot', opts.n],
  ['reference', 'createHash (reference)', Math.max(10, Math.round(opts.n / 4))],
];
for (const [name, label, n] of rows) {
  const r = measure((password, salt) => sha512CryptUsing(name, password, salt), n);
  single[name] = r;
  console.log(`   ${label.padEnd(32)} ${fmt(r.wall).padStart(8)} ${fmt(r.cpu).padStart(8)}   ${r.wallRuns.map((x) => fmt(x)).join(' ')}`);
}
single.openssl = measureOpenssl(opts.n);
console.log(
  `   ${'openssl passwd -6 -stdin'.padEnd(32)} ${fmt(single.openssl.wall).padStart(8)} ${fmt(single.openssl.cpu).padStart(8)}   ${single.openssl.wallRuns.map((x) => fmt(x)).join(' ')}`,
);
results.single = single;

// --------------------------------------------------------- 2. the pool --

/** Burns `ms` of CPU on this thread (the stand-in for a request's HTTP work). */
function burn(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

async function poolRun(hasher, { seconds, clients, mainMs, body }) {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  const deadline = performance.now() + seconds * 1000;
  let done = 0;
  delay.enable();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      while (performance.now() < deadline) {
        if (mainMs) burn(mainMs / 2);
        const [username, password] = body === 'fixed' ? ['suitepad', 'suitepad'] : [`user${client}`, randomPassword()];
        await hasher.hash(username, password);
        if (mainMs) burn(mainMs / 2);
        done++;
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  delay.disable();
  return { perSecond: done / elapsed, loopP99: delay.percentile(99) / 1e6, loopMax: delay.max / 1e6 };
}

console.log(`\n2. PasswordHasher (worker threads), 16 clients × ${opts.seconds} s each, new password per request unless "fixed"`);
console.log('   threads  load                             hashes/s   event-loop delay p99 / max ms');
results.pool = [];
for (const threads of opts.threads) {
  const hasher = new PasswordHasher({ threads });
  try {
    await hasher.implementation(); // starts the pool
    await Promise.all(Array.from({ length: 20 * threads }, () => hasher.hash('warm', randomPassword())));
    // One at a time: the round trip of a hash through the pool.
    const latencies = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      await hasher.hash('one', randomPassword());
      latencies.push(performance.now() - t0);
    }
    const latency = median(latencies);
    console.log(`   ${String(threads).padEnd(8)} ${'one at a time: ms per hash'.padEnd(32)} ${fmt(latency).padStart(8)}`);
    results.pool.push({ threads, load: 'sequential', msPerHash: latency });
    for (const [label, load] of [
      ['pool only', { mainMs: 0, body: 'new' }],
      [`+ ${opts.mainMs} ms event-loop CPU a request`, { mainMs: opts.mainMs, body: 'new' }],
      [`fixed body, + ${opts.mainMs} ms`, { mainMs: opts.mainMs, body: 'fixed' }],
    ]) {
      const r = await poolRun(hasher, { seconds: opts.seconds, clients: 16, ...load });
      console.log(`   ${String(threads).padEnd(8)} ${label.padEnd(32)} ${fmt(r.perSecond, 0).padStart(8)}   ${fmt(r.loopP99, 1)} / ${fmt(r.loopMax, 1)}`);
      results.pool.push({ threads, load: label, ...r });
    }
  } finally {
    await hasher.close();
  }
}

// ----------------------------------------------------------- footer --

const statsAfter = allStats();
const machineAfter = machineCpu();
const self = process.cpuUsage(selfBefore);
const selfSeconds = (self.user + self.system) / 1e6 + childCpuMs / 1000; // this process with its worker threads, and openssl
const othersSeconds = machineAfter.busy - machineBefore.busy - selfSeconds;
const machineSeconds = machineAfter.total - machineBefore.total;
results.loadAfter = os.loadavg();
results.othersCpu = { seconds: othersSeconds, shareOfMachine: othersSeconds / machineSeconds };
results.busiest = busiest(statsBefore, statsAfter);
console.log(
  `\nload average after: ${results.loadAfter.map((l) => l.toFixed(2)).join(' ')}; other processes used ${fmt(othersSeconds, 1)} CPU-s ` +
    `of the machine's ${fmt(machineSeconds, 1)} (${fmt((100 * othersSeconds) / machineSeconds, 0)}%) meanwhile; the busiest that ran throughout:`,
);
for (const p of results.busiest) console.log(`   ${fmt(p.cpu, 1).padStart(6)} s  ${p.cmd}`);
if (!results.busiest.length) console.log('   (none above 0.05 s)');

const dir = path.join(projectRoot, 'bench', 'results');
fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(path.join(dir, 'hash-latest.json'), JSON.stringify(results, null, 2) + '\n');
console.log(`\nwritten: bench/results/hash-latest.json`);
