#!/usr/bin/env node
// The smoke run of the Node matrix (scripts/node-matrix.sh): the built
// service, started by the Node that runs this script, on its bundled local
// emulator (never AWS): start, create, status, delete, stop. Plain Node with
// no dependencies, so it runs on any supported release.
//
//   node scripts/smoke.mjs [PROJECT_DIR]     (default: this script's project)
//
// Prints one line per step and exits 0, or says which step failed and exits 1.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const project = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
const state = fs.mkdtempSync(path.join(os.tmpdir(), 'ec2-api-smoke-'));
const began = Date.now();
const say = (message) => console.log(`[smoke ${process.version}] ${message} (${((Date.now() - began) / 1000).toFixed(1)} s)`);

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// No AWS setting of the caller's reaches the service: it uses its own emulator.
const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('AWS_')));
const port = await freePort();
const url = `http://127.0.0.1:${port}`;
const server = spawn(process.execPath, [path.join(project, 'dist', 'server.js')], {
  cwd: project,
  env: { ...env, EC2_API_CLOUD: 'local', HOST: '127.0.0.1', PORT: String(port), EC2_API_DB: path.join(state, 'ec2-api.db'), LOG_LEVEL: 'warn', LOG_FORMAT: 'json' },
  stdio: ['ignore', 'pipe', 'pipe'],
});
let output = '';
server.stdout.on('data', (chunk) => (output += chunk));
server.stderr.on('data', (chunk) => (output += chunk));
const exited = new Promise((resolve) => server.on('exit', (code, signal) => resolve(code ?? signal)));

function fail(message) {
  console.error(`[smoke ${process.version}] FAILED: ${message}\n--- service output ---\n${output}`);
  server.kill('SIGKILL');
  process.exit(1);
}

async function until(what, check, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (server.exitCode !== null) fail(`the service exited (${server.exitCode}) while waiting for ${what}`);
    if (Date.now() > deadline) fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function call(method, route, body) {
  const response = await fetch(`${url}${route}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, body: await response.json() };
}

try {
  await until('the service to listen', () => fetch(`${url}/healthz`).then((r) => r.ok), 60_000);
  say('started');

  const created = await call('POST', '/create', { username: 'smoke', password: 'smoke-password' });
  if (created.status !== 200 || created.body.status !== 'running' || !created.body.ip) fail(`POST /create answered ${created.status} ${JSON.stringify(created.body)}`);
  say(`created ${created.body.instance_id} at ${created.body.ip}`);

  const status = await call('GET', `/status/${created.body.task_id}`);
  if (status.status !== 200 || status.body.status !== 'succeeded' || status.body.ip !== created.body.ip) fail(`GET /status answered ${status.status} ${JSON.stringify(status.body)}`);
  say(`status: ${status.body.status}`);

  const deleted = await call('GET', `/delete/${created.body.ip}`);
  if (deleted.status !== 200 || deleted.body.status !== 'terminated') fail(`GET /delete answered ${deleted.status} ${JSON.stringify(deleted.body)}`);
  say(`deleted: ${deleted.body.status}`);

  server.kill('SIGTERM');
  const code = await exited;
  if (code !== 0) fail(`the service exited with ${code} on SIGTERM, not 0`);
  say('stopped');
} catch (error) {
  fail(error instanceof Error ? error.stack : String(error));
} finally {
  fs.rmSync(state, { recursive: true, force: true });
}
