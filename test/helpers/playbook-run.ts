// Runs the real playbooks with the real ansible-playbook, the two ways they
// are run: by hand, as playbooks/README.md tells ops, and as the service does (vars in
// a 0600 file with every value marked unsafe, events from the ec2_api_events
// callback on fd 3), with the service's own markUnsafe but not its runner.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { markUnsafe } from '../../src/ansible/runner.js';
import { projectRoot } from '../../src/config.js';
import { tempDir } from './harness.js';

/** A SHA-512-crypt hash, made as ops make one. */
export function sha512Crypt(password: string): string {
  return execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: password, encoding: 'utf8' }).trim();
}

export interface Recap {
  ok: number;
  changed: number;
  failed: number;
  ignored: number;
}

function recapOf(stdout: string): Recap | null {
  const m = /localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)\s+skipped=\d+\s+rescued=\d+\s+ignored=(\d+)/.exec(stdout);
  return m ? { ok: Number(m[1]), changed: Number(m[2]), failed: Number(m[3]), ignored: Number(m[4]) } : null;
}

export interface ByHandRun {
  exitCode: number;
  /** stdout and stderr together. */
  output: string;
  recap: Recap | null;
}

/**
 * The variables of a run by hand in a 0600 file, as playbooks/README.md has ops
 * write them (a hash on the command line would show in `ps`); pass `-e @<file>`.
 */
export function byHandVars(vars: Record<string, string>): string {
  const file = path.join(tempDir('ec2-api-by-hand-'), 'vars.json');
  fs.writeFileSync(file, JSON.stringify(vars), { mode: 0o600 });
  return file;
}

/** `ansible-playbook -i inventory playbooks/<name> …` from the project root, as playbooks/README.md says. */
export async function byHand(endpoint: string, playbook: string, ...args: string[]): Promise<ByHandRun> {
  const run = await execa('ansible-playbook', ['-i', 'inventory', `playbooks/${playbook}`, ...args], {
    cwd: projectRoot,
    env: { AWS_ENDPOINT_URL: endpoint, ANSIBLE_NOCOLOR: '1' },
    all: true,
    reject: false,
  });
  return { exitCode: run.exitCode ?? -1, output: run.all ?? '', recap: recapOf(run.stdout ?? '') };
}

export interface ServiceRun extends ByHandRun {
  /** ec2_api_results from the callback's stats event ({} when there was none). */
  results: Record<string, any>;
  imageId: string | null;
  /** The stats event's ok: no host failed. */
  ok: boolean | null;
  durationMs: number;
}

export interface ServiceRunOptions {
  endpoint: string;
  env?: Record<string, string>;
  args?: string[];
  /** The playbook's path; default playbooks/<name>. */
  playbookPath?: string;
}

/** A playbook run the way the service runs it. */
export async function asService(playbook: string, vars: Record<string, unknown>, options: ServiceRunOptions): Promise<ServiceRun> {
  const dir = tempDir('ec2-api-run-');
  const varsFile = path.join(dir, 'vars.json');
  fs.writeFileSync(varsFile, JSON.stringify(markUnsafe(vars)), { mode: 0o600 });
  const started = Date.now();
  try {
    const run = await execa(
      'ansible-playbook',
      ['-i', 'inventory', options.playbookPath ?? path.join(projectRoot, 'playbooks', playbook), '-e', `@${varsFile}`, ...(options.args ?? [])],
      {
        cwd: projectRoot,
        env: {
          AWS_ENDPOINT_URL: options.endpoint,
          ANSIBLE_CONFIG: path.join(projectRoot, 'ansible.cfg'),
          ANSIBLE_CALLBACKS_ENABLED: 'ec2_api_events',
          EC2_API_EVENTS_FD: '3',
          ANSIBLE_NOCOLOR: '1',
          ...options.env,
        },
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        all: true,
        reject: false,
      },
    );
    const events = String(run.stdio[3] ?? '')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, any>);
    const stats = events.find((event) => event.event === 'stats');
    return {
      exitCode: run.exitCode ?? -1,
      output: run.all ?? '',
      recap: recapOf(run.stdout ?? ''),
      results: (stats?.results as Record<string, any>) ?? {},
      imageId: (stats?.image_id as string | null) ?? null,
      ok: (stats?.ok as boolean | undefined) ?? null,
      durationMs: Date.now() - started,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A create task as the service sends it. */
export function createTask(taskId: string, hash: string, username = 'alice') {
  return { task_id: taskId, username, password_hash: hash };
}
