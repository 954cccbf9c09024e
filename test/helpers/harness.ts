// Test harness: a real moto server per test file, and the real service
// (database, better-queue, ansible-playbook) pointed at it. Nothing here can
// reach AWS: every run gets AWS_ENDPOINT_URL, and the process's own AWS
// settings are replaced with placeholders before anything starts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { startEmulator, type Emulator } from '../../src/ansible/emulator.js';
import { loadConfig, projectRoot, type Config } from '../../src/config.js';
import { startRuntime, type Runtime } from '../../src/runtime.js';
import type { Logger } from '../../src/tasks/service.js';

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

export const silentLog: Logger = { info() {}, warn() {}, error() {} };

export function tempDir(prefix = 'ec2-api-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function startMoto(): Promise<Emulator> {
  return startEmulator(loadConfig({}).emulatorPython);
}

export interface TestService {
  config: Config;
  runtime: Runtime;
  app: FastifyInstance;
  close(graceSeconds?: number): Promise<void>;
}

/** The real service on `endpoint`, with its own database unless one is given. */
export async function startService(endpoint: string, env: Record<string, string> = {}): Promise<TestService> {
  const config = loadConfig({
    EC2_API_DB: path.join(tempDir(), 'ec2-api.db'),
    AWS_ENDPOINT_URL: endpoint,
    ...env,
  });
  const runtime = await startRuntime(config, silentLog);
  const app = buildApp({ config, service: runtime.service, cloud: runtime.cloud });
  await app.ready();
  return {
    config,
    runtime,
    app,
    async close(graceSeconds = 0) {
      await app.close();
      await runtime.close(graceSeconds);
    },
  };
}

export interface Ec2Instance {
  id: string;
  state: string;
  ip: string | null;
  tags: Record<string, string>;
  user_data: string | null;
}

const ec2Script = path.join(projectRoot, 'test', 'helpers', 'ec2.py');

/** Every instance moto holds, as EC2 itself reports them. */
export function instances(endpoint: string): Ec2Instance[] {
  return JSON.parse(execFileSync('/usr/bin/python3', [ec2Script, endpoint, 'instances'], { encoding: 'utf8' })) as Ec2Instance[];
}

export function liveInstancesOfTask(endpoint: string, taskId: string): Ec2Instance[] {
  return instances(endpoint).filter((i) => i.tags.TaskId === taskId && i.state !== 'terminated');
}

/** Launches an instance the way someone else would: without our tags. */
export function launchUntagged(endpoint: string): { id: string; ip: string } {
  return JSON.parse(execFileSync('/usr/bin/python3', [ec2Script, endpoint, 'launch-untagged'], { encoding: 'utf8' })) as { id: string; ip: string };
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
