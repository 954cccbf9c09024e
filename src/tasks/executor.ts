// Turns a batch of queued tasks into playbook runs and their results into
// task outcomes. One `ansible-playbook` per action per batch: the start-up
// cost of Ansible is paid once for many tasks, while every task still gets
// its own instance, result and error.
import path from 'node:path';
import { PlaybookRun, type AnsibleEvent, type PlaybookResultEntry, type RunResult } from '../ansible/runner.js';
import type { TaskStore } from './store.js';
import type { CreateParams, DeleteParams, InstanceState, Outcome, Task } from './types.js';

export interface ExecutorOptions {
  playbookDir: string;
  projectDir: string;
  ansiblePlaybook: string;
  taskTimeout: number;
  /** Environment for runs: cloud endpoint, region, credentials. */
  env: Record<string, string>;
}

export type Finished = (task: Task) => void;

/** One finished playbook run, for metrics: how long, and how it ended. */
export interface RunReport {
  action: Task['action'];
  /** ok: exit 0; failed: non-zero exit or could not start; timed_out; stopped (shutdown or cancel). */
  outcome: 'ok' | 'failed' | 'timed_out' | 'stopped';
  seconds: number;
  tasks: number;
}

export class Executor {
  private readonly active = new Set<{ run: PlaybookRun; taskIds: string[] }>();
  /** Public IPs with a delete in flight: a second delete of one IP waits. */
  private readonly ipBusy = new Map<string, Promise<void>>();
  private stopping = false;

  constructor(
    private readonly store: TaskStore,
    private readonly options: ExecutorOptions,
    private readonly onFinished: Finished,
    private readonly onRunEnd: (report: RunReport) => void = () => undefined,
  ) {}

  get running(): number {
    return this.active.size;
  }

  /** Runs the given tasks (already marked running) to an outcome each. */
  async execute(tasks: Task[]): Promise<void> {
    const creates = tasks.filter((task) => task.action === 'create');
    const deletes = tasks.filter((task) => task.action === 'delete');
    await Promise.all([
      creates.length ? this.runCreates(creates) : undefined,
      deletes.length ? this.runDeletes(deletes) : undefined,
    ]);
  }

  /**
   * Stops every running playbook (shutdown past its grace period). Their
   * tasks are not finished: the service puts them back in the queue.
   */
  async stopAll(): Promise<string[]> {
    this.stopping = true;
    const stopped = [...this.active];
    for (const { run } of stopped) run.stop('stopped');
    await Promise.all(stopped.map(({ run }) => run.done.catch(() => undefined)));
    return stopped.flatMap(({ taskIds }) => taskIds);
  }

  /** Resolves when no playbook runs, or after `ms`. */
  async idle(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.active.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private async runCreates(tasks: Task[]): Promise<void> {
    const vars = {
      ec2_api_tasks: tasks.map((task) => {
        const params = task.params as CreateParams;
        return { task_id: task.id, username: params.username, password_hash: params.password_hash };
      }),
    };
    const result = await this.run('create', vars, tasks);
    if (!result) return;
    const why = whyNoResult(result, this.options.taskTimeout);
    for (const task of tasks) this.finish(task, createOutcome(result.results[task.id], result, why), result.log);
  }

  private async runDeletes(tasks: Task[]): Promise<void> {
    const ips = [...new Set(tasks.map((task) => (task.params as DeleteParams).ip))];
    const release = await this.claimIps(ips);
    try {
      const vars = {
        ec2_api_deletes: tasks.map((task) => ({ task_id: task.id, ip: (task.params as DeleteParams).ip })),
      };
      const result = await this.run('delete', vars, tasks);
      if (!result) return;
      const why = whyNoResult(result, this.options.taskTimeout);
      for (const task of tasks) this.finish(task, deleteOutcome(task, result.results[task.id], result, why), result.log);
    } finally {
      release();
    }
  }

  /** Runs a playbook for tasks; null when it was stopped (shutdown) and they must run again. */
  private async run(action: Task['action'], vars: Record<string, unknown>, tasks: Task[]): Promise<RunResult | null> {
    const taskIds = tasks.map((task) => task.id);
    const run = new PlaybookRun({
      playbook: path.join(this.options.playbookDir, `${action}.yml`),
      projectDir: this.options.projectDir,
      ansiblePlaybook: this.options.ansiblePlaybook,
      vars,
      env: this.options.env,
      timeoutSeconds: this.options.taskTimeout,
      onSpawn: (pid, start) => this.store.setRunner(taskIds, pid, start),
      onEvent: (event: AnsibleEvent) => {
        if (event.event === 'task_start') this.store.setProgress(taskIds, { step: event.step, of: event.of, name: event.name });
      },
    });
    const entry = { run, taskIds };
    this.active.add(entry);
    if (this.stopping) run.stop('stopped');
    try {
      const result = await run.done;
      const outcome = result.end === 'completed' ? (result.exitCode === 0 ? 'ok' : 'failed') : result.end === 'spawn_failed' ? 'failed' : result.end;
      this.onRunEnd({ action, outcome, seconds: result.durationMs / 1000, tasks: tasks.length });
      return result.end === 'stopped' ? null : result;
    } finally {
      this.active.delete(entry);
    }
  }

  private finish(task: Task, outcome: Outcome, log: string): void {
    if (this.store.finish(task.id, outcome, log)) {
      const finished = this.store.get(task.id);
      if (finished) this.onFinished(finished);
    }
  }

  private async claimIps(ips: string[]): Promise<() => void> {
    for (;;) {
      const busy = ips.map((ip) => this.ipBusy.get(ip)).filter((p): p is Promise<void> => p !== undefined);
      if (busy.length === 0) break;
      await Promise.all(busy);
    }
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    for (const ip of ips) this.ipBusy.set(ip, done);
    return () => {
      for (const ip of ips) if (this.ipBusy.get(ip) === done) this.ipBusy.delete(ip);
      release();
    };
  }
}

/** Why a run produced no result for a task, in words a user can act on. */
function whyNoResult(result: RunResult, timeoutSeconds: number): string {
  if (result.end === 'timed_out') {
    return `the playbook ran longer than EC2_API_TASK_TIMEOUT (${timeoutSeconds} s) and was killed`;
  }
  if (result.end === 'spawn_failed') return result.lastError ?? 'ansible-playbook could not be started';
  const detail = result.lastError ? `: ${result.lastError}` : '';
  return `the playbook failed (exit code ${result.exitCode ?? 'unknown'}) before reporting a result${detail}`;
}

function asState(state: string | null): InstanceState | null {
  return state === 'pending' || state === 'running' || state === 'terminated' || state === 'not_found' ? state : null;
}

function createOutcome(entry: PlaybookResultEntry | undefined, result: RunResult, why: string): Outcome {
  if (!entry || result.end === 'timed_out') return { status: 'failed', error: why };
  if (!entry.ok) {
    return {
      status: 'failed',
      ip: entry.public_ip,
      instance_id: entry.instance_id,
      instance_state: asState(entry.state),
      error: entry.error ?? 'the instance could not be launched',
    };
  }
  return { status: 'succeeded', ip: entry.public_ip, instance_id: entry.instance_id, instance_state: asState(entry.state) };
}

function deleteOutcome(task: Task, entry: PlaybookResultEntry | undefined, result: RunResult, why: string): Outcome {
  const ip = (task.params as DeleteParams).ip;
  if (!entry || result.end === 'timed_out') return { status: 'failed', ip, error: why };
  if (!entry.ok) {
    return {
      status: 'failed',
      ip,
      instance_id: entry.instance_id,
      instance_state: asState(entry.state),
      error: entry.error ?? `the instance with public IP ${ip} could not be terminated`,
    };
  }
  return { status: 'succeeded', ip, instance_id: entry.instance_id, instance_state: 'terminated' };
}
