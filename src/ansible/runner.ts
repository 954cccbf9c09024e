// Runs one `ansible-playbook` and reports what happened, machine-readably.
//
// - argv array, no shell; the task's variables go in a 0600 file in a 0700
//   temp dir (`-e @file`), never on the command line or in the environment,
//   and the dir is removed afterwards;
// - the child leads its own process group, so a timeout or a stop kills the
//   whole tree (ansible forks workers and module processes);
// - progress and results arrive as JSON lines on fd 3 from our callback
//   plugin (plugins/callback/ec2_api_events.py); stdout/stderr are the human
//   log, kept with secrets already censored by `no_log`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { execa } from 'execa';
import { processStartTime, signalGroup, killGroupAndWait } from './process.js';

export interface PlaybookResultEntry {
  ok: boolean;
  instance_id: string | null;
  public_ip: string | null;
  state: string | null;
  error: string | null;
}

export type AnsibleEvent =
  | { event: 'playbook_start'; playbook: string }
  | { event: 'task_start'; step: number; of: number; name: string }
  | { event: 'task_end'; step: number; name: string; status: string; duration_ms?: number; msg?: string }
  | { event: 'stats'; ok: boolean; results: Record<string, PlaybookResultEntry> | null; image_id?: string | null };

export interface RunOptions {
  /** Absolute path of the playbook. */
  playbook: string;
  /** Where ansible.cfg and inventory/ are. */
  projectDir: string;
  ansiblePlaybook: string;
  vars: Record<string, unknown>;
  /** Extra environment for the child (cloud endpoint, region, credentials). */
  env: Record<string, string>;
  timeoutSeconds: number;
  onEvent?: (event: AnsibleEvent) => void;
  /** Called once the child exists, with its pid and kernel start time. */
  onSpawn?: (pid: number, startTime: string | null) => void;
}

export type RunEnd = 'completed' | 'timed_out' | 'stopped' | 'spawn_failed';

export interface RunResult {
  end: RunEnd;
  exitCode: number | null;
  log: string;
  /** Per-task results the playbook reported, keyed by task id (or IP by hand). */
  results: Record<string, PlaybookResultEntry>;
  /** The last failure Ansible reported, or why the run ended early. */
  lastError: string | null;
  /** The AMI a create run used (resolved or configured), when it reported one. */
  imageId: string | null;
  durationMs: number;
}

/** Secrets must never reach the child's environment (visible in /proc/<pid>/environ). */
const WITHHELD_ENV = ['API_TOKENS'];
const LOG_BUFFER_LIMIT = 1024 * 1024;
const KILL_GRACE_MS = 5_000;

/** Marks every string as unsafe, so Ansible never evaluates `{{ … }}` inside it. */
export function markUnsafe(value: unknown): unknown {
  if (typeof value === 'string') return { __ansible_unsafe: value };
  if (Array.isArray(value)) return value.map(markUnsafe);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, markUnsafe(inner)]));
  }
  return value;
}

export class PlaybookRun {
  readonly done: Promise<RunResult>;
  private stopReason: RunEnd | null = null;
  private output = '';
  private pid: number | undefined;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: RunOptions) {
    this.done = this.run();
  }

  /** The output so far (stdout and stderr, secrets censored by no_log): a live log. */
  get currentOutput(): string {
    return this.output;
  }

  /** Stops the whole process tree: SIGTERM, then SIGKILL after a grace. */
  stop(reason: 'timed_out' | 'stopped' = 'stopped'): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    if (this.pid === undefined) return;
    signalGroup(this.pid, 'SIGTERM');
    this.killTimer = setTimeout(() => signalGroup(this.pid!, 'SIGKILL'), KILL_GRACE_MS);
  }

  private async run(): Promise<RunResult> {
    const started = Date.now();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ec2-api-run-'));
    const varsFile = path.join(dir, 'vars.json');
    fs.writeFileSync(varsFile, JSON.stringify(markUnsafe(this.options.vars)), { mode: 0o600, flag: 'wx' });

    const env: Record<string, string | undefined> = {
      // EC2 throttles (RequestLimitExceeded) under bursts: botocore retries
      // throttling with exponential backoff instead of failing the task.
      // An operator's own AWS_RETRY_MODE / AWS_MAX_ATTEMPTS win.
      AWS_RETRY_MODE: 'standard',
      AWS_MAX_ATTEMPTS: '10',
      ...process.env,
      ...this.options.env,
      ANSIBLE_CONFIG: path.join(this.options.projectDir, 'ansible.cfg'),
      ANSIBLE_CALLBACKS_ENABLED: 'ec2_api_events',
      EC2_API_EVENTS_FD: '3',
      PYTHONUNBUFFERED: '1',
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_FORCE_COLOR: '0',
      // Pipelining sends module arguments over stdin instead of writing
      // them to a temp file; the temp dirs are ours and removed afterwards.
      ANSIBLE_PIPELINING: '1',
      ANSIBLE_LOCAL_TEMP: path.join(dir, 'local'),
      ANSIBLE_REMOTE_TEMP: path.join(dir, 'remote'),
    };
    for (const name of WITHHELD_ENV) delete env[name];

    let logCut = 0;
    let results: Record<string, PlaybookResultEntry> = {};
    let lastError: string | null = null;
    let imageId: string | null = null;
    let timeout: NodeJS.Timeout | undefined;

    try {
      const child = execa(this.options.ansiblePlaybook, ['-i', 'inventory', this.options.playbook, '-e', `@${varsFile}`], {
        cwd: this.options.projectDir,
        env,
        extendEnv: false,
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        all: true,
        buffer: false,
        reject: false,
        detached: true, // its own process group: the unit we time out and kill
        cleanup: false, // an orphan is found and killed at the next start-up
      });
      this.pid = child.pid;
      if (this.pid !== undefined) {
        this.options.onSpawn?.(this.pid, processStartTime(this.pid));
        if (this.stopReason) signalGroup(this.pid, 'SIGTERM');
      }
      timeout = setTimeout(() => this.stop('timed_out'), this.options.timeoutSeconds * 1000);

      child.all?.setEncoding('utf8');
      child.all?.on('data', (chunk: string) => {
        if (this.output.length + chunk.length <= LOG_BUFFER_LIMIT) this.output += chunk;
        else logCut += chunk.length;
      });

      const events = child.stdio[3];
      const reading = events
        ? (async () => {
            for await (const line of readline.createInterface({ input: events, crlfDelay: Infinity })) {
              const event = parseEvent(line);
              if (!event) continue;
              if (event.event === 'stats') {
                if (event.results) results = event.results;
                imageId = event.image_id ?? null;
              }
              if (event.event === 'task_end' && event.status === 'failed') lastError = event.msg ?? `task "${event.name}" failed`;
              try {
                this.options.onEvent?.(event);
              } catch {
                // A listener's failure must not stop us reading the run.
              }
            }
          })()
        : Promise.resolve();

      const outcome = await child;
      await reading.catch(() => undefined);
      if (this.pid !== undefined && this.stopReason) await killGroupAndWait(this.pid, KILL_GRACE_MS);

      if (logCut > 0) this.output += `\n… ${logCut} more characters of output were not kept …\n`;
      const end: RunEnd = this.stopReason ?? (outcome.failed && outcome.exitCode === undefined ? 'spawn_failed' : 'completed');
      if (end === 'spawn_failed') lastError = `could not run ${this.options.ansiblePlaybook}: ${outcome.shortMessage ?? 'unknown error'}`;
      return { end, exitCode: outcome.exitCode ?? null, log: this.output, results, lastError, imageId, durationMs: Date.now() - started };
    } finally {
      clearTimeout(timeout);
      clearTimeout(this.killTimer);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}

function parseEvent(line: string): AnsibleEvent | null {
  try {
    const value = JSON.parse(line) as AnsibleEvent;
    return value && typeof value === 'object' && typeof value.event === 'string' ? value : null;
  } catch {
    return null;
  }
}
