// The child processes of a bench run: a moto server, the built service, and
// playbooks run by hand. Every one is registered so that the end of the run,
// Ctrl-C, or a crash of the bench stops it (and what it started) by pid.
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { descendants, allStats } from './procfs.mjs';

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Live children of this bench, by pid. */
const children = new Map();
const tempDirs = new Set();

export function tempDir(prefix = 'ec2-api-bench-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A tool from the project's .venv when present, else from PATH (as src/config.ts does). */
export function fromVenv(tool) {
  const candidate = path.join(projectRoot, '.venv', 'bin', tool);
  return fs.existsSync(candidate) ? candidate : tool;
}

/**
 * The environment every child gets: this process's, minus anything that
 * could point at real AWS, plus placeholder credentials for the emulator.
 */
export function safeEnv(endpoint, extra = {}) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^AWS_/.test(name) || name === 'API_TOKENS' || name === 'EC2_API_CLOUD') continue;
    env[name] = value;
  }
  Object.assign(env, {
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: 'us-east-1',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  return { ...env, ...extra };
}

function track(child, name) {
  let output = '';
  const keep = (chunk) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const entry = { child, name, output: () => output, exited };
  children.set(child.pid, entry);
  void exited.then(() => children.delete(child.pid));
  return entry;
}

/**
 * Stops a child and everything it started: SIGTERM (or `signal`), then
 * SIGKILL after `graceMs`, then SIGKILL to any descendant still there.
 */
export async function stopProcess(entry, { signal = 'SIGTERM', graceMs = 10_000 } = {}) {
  const { child } = entry;
  if (child.exitCode !== null || child.signalCode !== null) return entry.exited;
  const tree = descendants(child.pid).map((s) => s.pid);
  try {
    process.kill(child.pid, signal);
  } catch {
    // already gone
  }
  const timer = setTimeout(() => {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, graceMs);
  const result = await entry.exited;
  clearTimeout(timer);
  // Playbooks run in their own process groups; anything left of them goes too.
  const stats = allStats();
  for (const pid of tree) {
    if (stats.some((s) => s.pid === pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  return result;
}

export async function stopAll() {
  await Promise.all([...children.values()].map((entry) => stopProcess(entry, { graceMs: 5_000 })));
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/** Last resort on exit: SIGKILL whatever is still registered, by pid. */
export function killAllNow() {
  for (const { child } of children.values()) {
    for (const s of descendants(child.pid)) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
}

async function waitUntil(check, ms, what, entry) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (entry && entry.child.exitCode !== null) {
      throw new Error(`${what}: the process exited (${entry.child.exitCode}):\n${entry.output().slice(-2000)}`);
    }
    const value = await check().catch(() => false);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${entry?.output().slice(-2000) ?? ''}`);
    await sleep(100);
  }
}

/** `python3 -m moto.server` on a free loopback port. */
export async function startMoto() {
  const python = process.env.EC2_API_EMULATOR_PYTHON?.trim() || fromVenv('python3');
  const port = await freePort();
  const child = spawn(python, ['-m', 'moto.server', '-p', String(port), '-H', '127.0.0.1'], {
    cwd: os.tmpdir(),
    env: safeEnv(`http://127.0.0.1:${port}`),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const entry = track(child, 'moto');
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(() => fetch(url).then(() => true), 30_000, 'moto to listen', entry);
  return { ...entry, url, stop: () => stopProcess(entry, { graceMs: 3_000 }) };
}

/** The V8 flags `npm start` runs the service with (package.json), so the bench measures the same process. */
const SERVICE_NODE_FLAGS = (() => {
  const start = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')).scripts.start;
  return [.../node ((?:--[\w-]+=\S+ )*)dist\/server\.js/.exec(start)?.[1].trim().split(/\s+/).filter(Boolean) ?? []];
})();

/**
 * The service's EC2 rate settings for moto alone, which meters nothing: the
 * pacer is then as wide as its settings go (an account with raised limits
 * does the same), so a phase against moto alone measures the service and
 * the machine, not EC2's default buckets (docs/pacing.md).
 */
export const UNMETERED_RATES = Object.freeze({
  EC2_API_RATE_RUN_INSTANCES: '100000/10000',
  EC2_API_RATE_TERMINATE_INSTANCES: '100000/10000',
  EC2_API_RATE_MUTATING: '100000/10000',
  EC2_API_RATE_DESCRIBE: '100000/10000',
});

/**
 * The built service (`node dist/server.js`) on a free port with a fresh
 * database, pointed at `endpoint`. `env` overrides; EC2_API_* settings from
 * the bench's own environment pass through (concurrency, batch size, …).
 */
export async function startService(endpoint, { env = {}, nodeArgs = [], name = 'service', db } = {}) {
  const port = await freePort();
  const dbDir = tempDir();
  const dbPath = path.join(dbDir, 'ec2-api.db');
  const childEnv = safeEnv(endpoint, {
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    EC2_API_SHUTDOWN_GRACE: process.env.EC2_API_SHUTDOWN_GRACE ?? '5',
    ...env,
    // A fresh SQLite file, unless the phase gives a database (nodes sharing PostgreSQL: their run folders stay apart).
    EC2_API_DB: db ?? dbPath,
    ...(db ? { EC2_API_RUNS_DIR: path.join(dbDir, 'runs') } : {}),
  });
  for (const [key, value] of Object.entries(childEnv)) if (value === undefined) delete childEnv[key];
  const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, ...nodeArgs, path.join(projectRoot, 'dist', 'server.js')], {
    cwd: projectRoot,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const entry = track(child, name);
  const url = `http://127.0.0.1:${port}`;
  const health = await waitUntil(
    () => fetch(`${url}/healthz`).then((r) => (r.ok ? r.json() : false)),
    30_000,
    'the service to listen',
    entry,
  );
  // Never real AWS: the service must say it uses our emulator.
  if (health.cloud?.kind !== 'endpoint' || !String(health.cloud?.endpoint ?? '').startsWith(endpoint)) {
    await stopProcess(entry, { signal: 'SIGKILL' });
    throw new Error(`the service does not use the bench's emulator: ${JSON.stringify(health.cloud)}`);
  }
  return {
    ...entry,
    url,
    dbPath,
    pid: child.pid,
    stop: (options) => stopProcess(entry, options),
  };
}

/** Runs a command to its end; resolves with wall time and exit code. */
export async function runToEnd(command, args, { cwd = projectRoot, env } = {}) {
  const started = process.hrtime.bigint();
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const entry = track(child, path.basename(command));
  const code = await entry.exited;
  return { code, seconds: Number(process.hrtime.bigint() - started) / 1e9, output: entry.output() };
}
