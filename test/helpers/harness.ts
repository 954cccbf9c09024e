// Test harness: a real moto server per test file, and the real service
// (database, better-queue, ansible-playbook) pointed at it. Nothing here can
// reach AWS: every run gets AWS_ENDPOINT_URL, and the process's own AWS
// settings are replaced with placeholders before anything starts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { buildApp } from '../../src/app.js';
import { startEmulator, type Emulator } from '../../src/ansible/emulator.js';
import { loadConfig, projectRoot, type Config } from '../../src/config.js';
import type { Db } from '../../src/tasks/db.js';
import { TERMINAL, type Task } from '../../src/tasks/model.js';
import type { TaskService } from '../../src/tasks/service.js';

for (const name of Object.keys(process.env)) {
  if (/^AWS_/.test(name)) delete process.env[name];
}
Object.assign(process.env, {
  AWS_ACCESS_KEY_ID: 'testing',
  AWS_SECRET_ACCESS_KEY: 'testing',
  AWS_REGION: 'us-east-1',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  AWS_CONFIG_FILE: '/dev/null',
  AWS_EC2_METADATA_DISABLED: 'true',
});

export function tempDir(prefix = 'ec2-api-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function startMoto(): Promise<Emulator> {
  return startEmulator(loadConfig({}).emulatorPython);
}

export interface TestService {
  config: Config;
  app: ReturnType<typeof buildApp>;
  /** The app's task engine, to look at tasks the way its routes do. */
  tasks: TaskService;
  db: Db;
  /** app.close(): the shutdown hooks, with EC2_API_SHUTDOWN_GRACE from the env given (0 unless set). */
  close(): Promise<void>;
}

/** The real service on `endpoint`, with its own database unless one is given. */
export async function startService(
  endpoint: string,
  env: Record<string, string> = {},
  options: { logger?: FastifyBaseLogger; beforeReady?: (app: ReturnType<typeof buildApp>) => void } = {},
): Promise<TestService> {
  const dir = tempDir();
  const config = loadConfig({
    EC2_API_DB: path.join(dir, 'ec2-api.db'),
    // On PostgreSQL, run folders of its own (the default would be ./data's, one for all); on SQLite, beside the file.
    ...(/^postgres(ql)?:/.test(env.EC2_API_DB ?? '') ? { EC2_API_RUNS_DIR: path.join(dir, 'runs') } : {}),
    AWS_ENDPOINT_URL: endpoint,
    EC2_API_SHUTDOWN_GRACE: '0',
    ...env,
  });
  const app = buildApp({ config, logger: options.logger });
  options.beforeReady?.(app);
  await app.ready();
  return { config, app, tasks: app.engine.tasks, db: app.engine.db!, close: () => app.close() };
}

/** A task's parameters as the database holds them (a create keeps the password's hash there). */
export function storedParams(db: Db, id: string): Record<string, string> {
  const row = db.prepare('SELECT params FROM tasks WHERE id = ?').get(id) as { params: string } | undefined;
  return row ? (JSON.parse(row.params) as Record<string, string>) : {};
}

export interface Ec2Instance {
  id: string;
  state: string;
  ip: string | null;
  tags: Record<string, string>;
  user_data: string | null;
}

const ec2Script = path.join(projectRoot, 'test', 'helpers', 'ec2.py');

/** Every instance moto holds, as EC2 itself reports them (user_data null: see liveInstancesOfTask). */
export function instances(endpoint: string): Ec2Instance[] {
  return JSON.parse(execFileSync('/usr/bin/python3', [ec2Script, endpoint, 'instances'], { encoding: 'utf8' })) as Ec2Instance[];
}

/** The instances tagged with this task id that are not terminated, with their user data. */
export function liveInstancesOfTask(endpoint: string, taskId: string): Ec2Instance[] {
  const tagged = JSON.parse(execFileSync('/usr/bin/python3', [ec2Script, endpoint, 'instances', taskId], { encoding: 'utf8' })) as Ec2Instance[];
  return tagged.filter((i) => i.tags.TaskId === taskId && i.state !== 'terminated');
}

/** Launches an instance the way someone else would: without our tags. */
export function launchUntagged(endpoint: string): { id: string; ip: string } {
  return JSON.parse(execFileSync('/usr/bin/python3', [ec2Script, endpoint, 'launch-untagged'], { encoding: 'utf8' })) as { id: string; ip: string };
}

/** Launches an instance someone else would, with these tags only. */
export function launchTagged(endpoint: string, tags: Record<string, string>): { id: string; ip: string } {
  const args = Object.entries(tags).map(([key, value]) => `${key}=${value}`);
  return JSON.parse(execFileSync('/usr/bin/python3', [ec2Script, endpoint, 'launch', ...args], { encoding: 'utf8' })) as { id: string; ip: string };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` returns a value, or fails after `ms`. */
export async function eventually<T>(check: () => T | undefined | null | false, ms = 60_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export const VALID = { username: 'suitepad', password: 'suitepad' };

/** The task once it has ended (succeeded, failed or canceled); fails after `ms`. */
export function untilTerminal(service: TaskService, id: string, ms = 120_000): Promise<Task> {
  return eventuallyAsync(async () => {
    const task = await service.get(id);
    return task && TERMINAL.has(task.status) ? task : undefined;
  }, ms, `task ${id} to end`);
}

/**
 * Fast look-up for polling: ids of non-terminated instances tagged with this
 * task id, straight from the emulator's EC2 Query API (it accepts any
 * signature; the header only names the service).
 */
export async function liveInstanceIds(endpoint: string, taskId: string): Promise<string[]> {
  const body = new URLSearchParams({
    Action: 'DescribeInstances',
    Version: '2016-11-15',
    'Filter.1.Name': 'tag:TaskId',
    'Filter.1.Value.1': taskId,
    'Filter.2.Name': 'instance-state-name',
    'Filter.2.Value.1': 'pending',
    'Filter.2.Value.2': 'running',
  });
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: 'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0',
    },
    body,
  });
  const xml = await response.text();
  return [...new Set([...xml.matchAll(/<instanceId>(i-[0-9a-f]+)<\/instanceId>/g)].map((m) => m[1]!))];
}

/** Polls an async check until it returns a value, or fails after `ms`. */
export async function eventuallyAsync<T>(check: () => Promise<T | undefined | null | false>, ms = 60_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

/** The built server (`node dist/server.js`) as a separate process, ready to serve. */
export async function spawnServer(env: Record<string, string>): Promise<ServerProcess> {
  const entry = path.join(projectRoot, 'dist', 'server.js');
  if (!fs.existsSync(entry)) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: projectRoot });
  const port = await freePort();
  const child = spawn(process.execPath, [entry], {
    cwd: projectRoot,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const url = `http://127.0.0.1:${port}`;
  await eventuallyAsync(async () => {
    if (child.exitCode !== null) throw new Error(`the server exited at start:\n${output}`);
    return fetch(`${url}/healthz`).then((r) => r.ok, () => false);
  }, 30_000, 'the server to listen');
  return { url, child, output: () => output, exited };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
  } catch {
    return false;
  }
}

/**
 * An EC2 endpoint in front of moto that answers the first `throttle` calls
 * of `action` with RequestLimitExceeded, as EC2 does under a burst, or (with
 * `refuseAll`) refuses every call's credentials. Counts the calls it saw.
 */
export async function ec2Proxy(target: string, options: { action?: string; throttle?: number; refuseAll?: boolean } = {}) {
  const seen = new Map<string, number>();
  let throttled = 0;
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const action = new URLSearchParams(body.toString()).get('Action') ?? '?';
    seen.set(action, (seen.get(action) ?? 0) + 1);
    const error = (status: number, code: string, message: string) => {
      res.writeHead(status, { 'content-type': 'text/xml' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>x</RequestID></Response>`);
    };
    if (options.refuseAll) return error(401, 'AuthFailure', 'AWS was not able to validate the provided access credentials');
    if (action === options.action && throttled < (options.throttle ?? 0)) {
      throttled++;
      return error(503, 'RequestLimitExceeded', 'Request limit exceeded.');
    }
    const headers = Object.fromEntries(
      Object.entries(req.headers).filter(([name]) => name === 'content-type' || name === 'authorization' || name.startsWith('x-amz')),
    ) as Record<string, string>;
    const upstream = await fetch(target, { method: req.method, headers, body: req.method === 'GET' ? undefined : body });
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'text/xml' });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls: (action: string) => seen.get(action) ?? 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
