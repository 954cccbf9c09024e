// Runs one `ansible-playbook` and reports what happened, machine-readably.
//
// - argv array, no shell; the task's variables (password hashes included)
//   go in a 0600 file in a 0700 run folder (`-e @file`), never on the command
//   line or in the environment; the folder is removed when the run ends, and
//   the folders a killed service left are removed at the next start
//   (`removeStaleRunFolders`);
// - the child leads its own process group, so a timeout or a stop kills the
//   whole tree (ansible forks workers and module processes);
// - progress and the final results arrive as JSON lines on fd 3 from our
//   callback plugin (plugins/callback/ec2_api_events.py); per-task results
//   that a module reports early arrive as JSON lines in a report file in the
//   same private dir (EC2_API_REPORT_FILE); stdout/stderr are the human log,
//   kept capped (output.ts) with secrets already censored by `no_log`.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { execa } from 'execa';
import { CappedOutput, type CappedText } from './output.js';
import { killGroupAndWait, processStartTime, signalGroup } from './process.js';

export interface PlaybookResultEntry {
  ok: boolean;
  instance_id?: string | null;
  instance_ids?: string[];
  public_ip?: string | null;
  state?: string | null;
  error?: string | null;
}

export type AnsibleEvent =
  | { event: 'playbook_start'; playbook: string }
  | { event: 'task_start'; step: number; of: number; name: string }
  | { event: 'task_end'; step: number; name: string; status: string; duration_ms?: number; msg?: string }
  | { event: 'stats'; ok: boolean; results: Record<string, unknown> | null; image_id?: string | null };

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
  /** How many tasks the run is for: reported with its outcome (metrics, logs). */
  taskCount?: number;
  onEvent?: (event: AnsibleEvent) => void;
  /** A task's result, reported by the playbook's module before the run ends. */
  onResult?: (taskId: string, entry: PlaybookResultEntry) => void;
  /** Called once the child exists, with its pid and kernel start time. */
  onSpawn?: (pid: number, startTime: string | null) => void;
}

/** Why a run was stopped before its end. */
export type StopReason = 'cancel' | 'shutdown' | 'timeout';

export type RunEnd =
  | { kind: 'completed'; exitCode: number }
  | { kind: 'stopped'; reason: 'cancel' | 'shutdown' }
  | { kind: 'timed_out' }
  | { kind: 'spawn_failed'; error: string };

export interface RunResult {
  end: RunEnd;
  log: CappedText;
  /** The results the playbook reported in its stats (set_stats ec2_api_results): keyed by task id, or list.yml's {instances}. */
  results: Record<string, unknown>;
  /** The last failure Ansible reported. */
  lastError: string | null;
  /** The AMI a create run used (resolved or configured), when it reported one. */
  imageId: string | null;
  durationMs: number;
}

/** Secrets must never reach a child's environment (visible in /proc/<pid>/environ). */
const WITHHELD_ENV = ['API_TOKENS', 'EC2_API_TOKEN'];
/** Between SIGTERM and SIGKILL of a stopped run: short, so a shutdown stays within its bound. */
const KILL_GRACE_MS = 2_000;

/** This process's environment (or `base`), with `extra`, without the secrets a child must not see. */
export function childEnvironment(
  extra: Record<string, string | undefined> = {},
  base: NodeJS.ProcessEnv = process.env,
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...base, ...extra };
  for (const name of WITHHELD_ENV) delete env[name];
  return env;
}
/** How often the report file is read while the playbook runs. */
const REPORT_POLL_MS = 100;

/** Every run folder's name starts with this, so that a stale one is recognised as ours. */
const RUN_FOLDER_PREFIX = 'ec2-api-run-';

/**
 * Removes the run folders (vars files with password hashes) that a service
 * killed mid-run left in `runsDir`. Only for a service that holds the
 * database's lock and has stopped the last process's playbooks: then no run
 * of ours uses them. Returns how many were removed.
 */
export function removeStaleRunFolders(runsDir: string): number {
  let names: string[];
  try {
    names = fs.readdirSync(runsDir);
  } catch {
    return 0; // no run has ever made it
  }
  const stale = names.filter((name) => name.startsWith(RUN_FOLDER_PREFIX));
  for (const name of stale) fs.rmSync(path.join(runsDir, name), { recursive: true, force: true });
  return stale.length;
}

/** Marks every string as unsafe, so Ansible never evaluates `{{ … }}` inside it. */
export function markUnsafe(value: unknown): unknown {
  if (typeof value === 'string') return { __ansible_unsafe: value };
  if (Array.isArray(value)) return value.map(markUnsafe);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, markUnsafe(inner)]));
  }
  return value;
}

/**
 * One playbook run. It starts when `start()` is called (the pool calls it
 * when a slot is free); a run stopped before it started never spawns.
 */
export class PlaybookRun {
  /** Names the run: its folder, and its log, which the tasks it runs share. */
  readonly id = randomUUID();
  readonly done: Promise<RunResult>;
  private stopReason: StopReason | null = null;
  private readonly output = new CappedOutput();
  private pid: number | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private begin!: () => void;

  constructor(
    private readonly options: RunOptions,
    /** Where its run folder is made: a private directory of the service's own. */
    private readonly runsDir: string,
  ) {
    const started = new Promise<void>((resolve) => (this.begin = resolve));
    this.done = started.then(() => this.run());
  }

  /** The playbook, as its file name: for logs and metrics. */
  get name(): string {
    return path.basename(this.options.playbook, '.yml');
  }

  /** The output so far (stdout and stderr, secrets censored by no_log): a live log. */
  get currentOutput(): CappedText {
    return this.output.snapshot;
  }

  get taskCount(): number {
    return this.options.taskCount ?? 0;
  }

  start(): void {
    this.begin();
  }

  /** Stops the whole process tree: SIGTERM, then SIGKILL after a grace. Before the start, it never spawns. */
  stop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.begin(); // a run that never got a slot ends now, as stopped
    if (this.pid === undefined) return;
    signalGroup(this.pid, 'SIGTERM');
    this.killTimer = setTimeout(() => signalGroup(this.pid!, 'SIGKILL'), KILL_GRACE_MS);
  }

  /** SIGKILL now, synchronously: for a process that must exit at once. */
  kill(): void {
    this.stopReason ??= 'shutdown';
    if (this.pid !== undefined) signalGroup(this.pid, 'SIGKILL');
  }

  private async run(): Promise<RunResult> {
    const started = Date.now();
    if (this.stopReason) return this.result(started, { kind: 'stopped', reason: this.stopReason === 'cancel' ? 'cancel' : 'shutdown' });
    const dir = path.join(this.runsDir, `${RUN_FOLDER_PREFIX}${this.id}`);
    const varsFile = path.join(dir, 'vars.json');
    const reportFile = path.join(dir, 'report.jsonl');
    const env = childEnvironment({
      ...this.options.env,
      ANSIBLE_CONFIG: path.join(this.options.projectDir, 'ansible.cfg'),
      ANSIBLE_CALLBACKS_ENABLED: 'ec2_api_events',
      EC2_API_EVENTS_FD: '3',
      EC2_API_REPORT_FILE: reportFile,
      PYTHONUNBUFFERED: '1',
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_FORCE_COLOR: '0',
      // Pipelining sends module arguments over stdin instead of writing
      // them to a temp file; the temp dirs are ours and removed afterwards.
      ANSIBLE_PIPELINING: '1',
      ANSIBLE_LOCAL_TEMP: path.join(dir, 'local'),
      ANSIBLE_REMOTE_TEMP: path.join(dir, 'remote'),
    });

    let results: Record<string, unknown> = {};
    let lastError: string | null = null;
    let imageId: string | null = null;
    let report: ReportTail | undefined;
    let timeout: NodeJS.Timeout | undefined;

    try {
      // Inside the try: when a write fails (a full disk), the folder and what it holds are removed too.
      fs.mkdirSync(this.runsDir, { recursive: true, mode: 0o700 });
      fs.mkdirSync(dir, { mode: 0o700 });
      fs.writeFileSync(varsFile, JSON.stringify(markUnsafe(this.options.vars)), { mode: 0o600, flag: 'wx' });
      fs.writeFileSync(reportFile, '', { mode: 0o600, flag: 'wx' });
      report = new ReportTail(reportFile, (taskId, entry) => this.options.onResult?.(taskId, entry));
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
      // The timeout first: whatever happens next, the run cannot outlive it.
      timeout = setTimeout(() => this.stop('timeout'), this.options.timeoutSeconds * 1000);
      if (this.pid !== undefined) {
        if (this.stopReason) signalGroup(this.pid, 'SIGTERM');
        try {
          this.options.onSpawn?.(this.pid, processStartTime(this.pid));
        } catch {
          // Recording the runner failed (the database is busy): the run goes on; recovery finds no runner to kill.
        }
      }

      child.all?.setEncoding('utf8');
      child.all?.on('data', (chunk: string) => this.output.append(chunk));

      const events = child.stdio[3];
      const reading = events
        ? (async () => {
            for await (const line of readline.createInterface({ input: events, crlfDelay: Infinity })) {
              const event = parseEvent(line);
              if (!event) continue;
              if (event.event === 'stats') {
                results = event.results ?? {};
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
      report.finish();
      if (this.pid !== undefined && this.stopReason) await killGroupAndWait(this.pid, KILL_GRACE_MS);

      let end: RunEnd;
      if (this.stopReason === 'timeout') end = { kind: 'timed_out' };
      else if (this.stopReason) end = { kind: 'stopped', reason: this.stopReason };
      else if (outcome.exitCode === undefined) end = { kind: 'spawn_failed', error: `could not run ${this.options.ansiblePlaybook}: ${outcome.shortMessage ?? 'unknown error'}` };
      else end = { kind: 'completed', exitCode: outcome.exitCode };
      return { ...this.result(started, end), results, lastError, imageId };
    } finally {
      report?.finish();
      clearTimeout(timeout);
      clearTimeout(this.killTimer);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  private result(started: number, end: RunEnd): RunResult {
    return { end, log: this.output.snapshot, results: {}, lastError: null, imageId: null, durationMs: Date.now() - started };
  }
}

/** Reads the JSON lines a module appends to the report file, as they come. */
class ReportTail {
  private offset = 0;
  private partial = '';
  private readonly timer: NodeJS.Timeout;
  private finished = false;

  constructor(
    private readonly file: string,
    private readonly onResult: (taskId: string, entry: PlaybookResultEntry) => void,
  ) {
    this.timer = setInterval(() => this.read(), REPORT_POLL_MS);
  }

  /** Reads what is left and stops. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.timer);
    this.read();
  }

  private read(): void {
    let chunk: Buffer;
    try {
      const fd = fs.openSync(this.file, 'r');
      try {
        const size = fs.fstatSync(fd).size;
        if (size <= this.offset) return;
        chunk = Buffer.alloc(size - this.offset);
        fs.readSync(fd, chunk, 0, chunk.length, this.offset);
        this.offset = size;
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return; // removed with the run's dir
    }
    const lines = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const parsed = parseJson(line) as (PlaybookResultEntry & { task_id?: unknown }) | undefined;
      if (!parsed || typeof parsed.task_id !== 'string' || typeof parsed.ok !== 'boolean') continue;
      const { task_id, ...entry } = parsed;
      try {
        this.onResult(task_id, entry);
      } catch {
        // A listener's failure must not stop us reading the run.
      }
    }
  }
}

function parseJson(line: string): unknown {
  try {
    return JSON.parse(line) as unknown;
  } catch {
    return undefined;
  }
}

function parseEvent(line: string): AnsibleEvent | null {
  const value = parseJson(line) as AnsibleEvent | undefined;
  return value && typeof value === 'object' && typeof value.event === 'string' ? value : null;
}
