// Turns a batch of queued tasks into playbook runs and their results into
// task outcomes. One `ansible-playbook` per action per batch: the start-up
// cost of Ansible is paid once for many tasks, while every task still gets
// its own instance, result and error. Also: cancel (stop the run, clean up
// what a canceled create launched), live logs, and task events.
import path from 'node:path';
import { PlaybookRun, type AnsibleEvent, type PlaybookResultEntry, type RunResult } from '../ansible/runner.js';
import type { TaskEvents } from './events.js';
import type { TaskStore } from './store.js';
import { taskView, type CreateParams, type DeleteParams, type InstanceState, type Outcome, type Task } from './types.js';

export interface ExecutorOptions {
  playbookDir: string;
  projectDir: string;
  ansiblePlaybook: string;
  taskTimeout: number;
  /** Environment for runs: cloud endpoint, region, credentials. */
  env: Record<string, string>;
}

export interface TaskLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** The playbooks the executor runs; each is `playbooks/<name>.yml`. */
export type PlaybookName = 'create' | 'delete' | 'cancel';

/** One finished playbook run, for metrics: how long, and how it ended. */
export interface RunReport {
  action: PlaybookName;
  /** ok: exit 0; failed: non-zero exit or could not start; timed_out; stopped (shutdown or cancel). */
  outcome: 'ok' | 'failed' | 'timed_out' | 'stopped';
  seconds: number;
  tasks: number;
}

export interface ExecutorDeps {
  store: TaskStore;
  events: TaskEvents;
  log: TaskLogger;
  /** A task reached a terminal state. */
  onFinished(task: Task): void;
  /** Tasks whose run was stopped by another member's cancel: they go back to the queue. */
  onRequeue(taskIds: string[]): void;
  onRunEnd(report: RunReport): void;
}

interface ActiveRun {
  run: PlaybookRun;
  taskIds: string[];
  /** Members whose cancel stopped this run. */
  canceled: Set<string>;
  cancellable: boolean;
}

const CANCELED = 'canceled by request';
/** How long a resolved image is reused before create.yml looks up the newest again. */
const IMAGE_REUSE_MS = 3_600_000;

export class Executor {
  private readonly active = new Set<ActiveRun>();
  /** Cancels asked for tasks that are running but whose playbook has not started yet. */
  private readonly cancelRequested = new Set<string>();
  /** Public IPs with a delete in flight: a second delete of one IP waits. */
  private readonly ipBusy = new Map<string, Promise<void>>();
  private stopping = false;
  /** The image the last create run used: passing it saves each run a look-up (about 0.5 s). */
  private image: { id: string; at: number } | null = null;

  constructor(
    private readonly options: ExecutorOptions,
    private readonly deps: ExecutorDeps,
  ) {}

  get running(): number {
    return this.active.size;
  }

  /** Runs the given tasks (already marked running) to an outcome each. */
  async execute(tasks: Task[]): Promise<void> {
    // A cancel asked for before a crash: clean up instead of running again.
    const canceled = tasks.filter((task) => task.cancel_requested);
    const rest = tasks.filter((task) => !task.cancel_requested);
    const creates = rest.filter((task) => task.action === 'create');
    const deletes = rest.filter((task) => task.action === 'delete');
    await Promise.all([
      canceled.length ? this.cleanUp(canceled, '') : undefined,
      creates.length ? this.runCreates(creates) : undefined,
      deletes.length ? this.runDeletes(deletes) : undefined,
    ]);
  }

  /** Stops the run of a running task; the task ends `canceled` (a create's instance is terminated). */
  cancel(taskId: string): void {
    this.cancelRequested.add(taskId);
    for (const entry of this.active) {
      if (entry.cancellable && entry.taskIds.includes(taskId)) {
        entry.canceled.add(taskId);
        entry.run.stop('stopped');
      }
    }
  }

  /** The output so far of a running task's playbook, or undefined when none runs for it. */
  liveLog(taskId: string): string | undefined {
    for (const entry of this.active) if (entry.taskIds.includes(taskId)) return entry.run.currentOutput;
    return undefined;
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
    const image = this.image && Date.now() - this.image.at < IMAGE_REUSE_MS ? { ec2_image_id: this.image.id } : {};
    await this.runAndSettle('create', { ...vars, ...image }, tasks, createOutcome);
  }

  private async runDeletes(tasks: Task[]): Promise<void> {
    const ips = [...new Set(tasks.map((task) => (task.params as DeleteParams).ip))];
    const release = await this.claimIps(ips);
    try {
      const vars = {
        ec2_api_deletes: tasks.map((task) => ({ task_id: task.id, ip: (task.params as DeleteParams).ip })),
      };
      await this.runAndSettle('delete', vars, tasks, deleteOutcome);
    } finally {
      release();
    }
  }

  /** Runs the playbook for a batch and gives every member its outcome (or its cancel). */
  private async runAndSettle(
    name: 'create' | 'delete',
    vars: Record<string, unknown>,
    tasks: Task[],
    outcomeOf: (task: Task, entry: PlaybookResultEntry | undefined, result: RunResult, why: string) => Outcome,
  ): Promise<void> {
    const ran = await this.run(name, vars, tasks, true);
    if (!ran) return;
    const { result, canceled } = ran;
    if (name === 'create' && result.imageId && !('ec2_image_id' in vars)) this.image = { id: result.imageId, at: Date.now() };
    if (canceled.size) {
      await this.afterCancel(tasks, canceled, result);
      if (result.end === 'stopped') return;
    }
    const why = whyNoResult(result, this.options.taskTimeout);
    for (const task of tasks.filter((t) => !canceled.has(t.id))) {
      this.finish(task, outcomeOf(task, result.results[task.id], result, why), result.log);
    }
  }

  /**
   * After a cancel stopped (or raced) a run: the canceled members are
   * cleaned up; when the run was stopped, the others go back to the queue.
   */
  private async afterCancel(tasks: Task[], canceled: Set<string>, result: RunResult): Promise<void> {
    if (result.end === 'stopped') {
      const others = tasks.filter((task) => !canceled.has(task.id));
      if (others.length) this.deps.onRequeue(others.map((task) => task.id));
    }
    await this.cleanUp(tasks.filter((task) => canceled.has(task.id)), result.log);
  }

  /** Ends canceled tasks; a create's instance, if it launched one, is terminated (found by its TaskId tag). */
  private async cleanUp(tasks: Task[], log: string): Promise<void> {
    const creates = tasks.filter((task) => task.action === 'create');
    for (const task of tasks.filter((t) => t.action === 'delete')) {
      this.finish(task, { status: 'canceled', ip: (task.params as DeleteParams).ip, error: CANCELED }, log);
    }
    if (!creates.length) return;
    const ran = await this.run('cancel', { ec2_api_cancels: creates.map((task) => ({ task_id: task.id })) }, creates, false);
    if (!ran) return;
    const { result } = ran;
    for (const task of creates) {
      const entry = result.results[task.id] as (PlaybookResultEntry & { instance_ids?: string[] }) | undefined;
      const fullLog = `${log}\n--- cleanup after cancel ---\n${result.log}`;
      if (!entry || !entry.ok) {
        const why = entry?.error ?? whyNoResult(result, this.options.taskTimeout);
        this.finish(task, { status: 'canceled', error: `${CANCELED}; terminating its instance failed: ${why}` }, fullLog);
        continue;
      }
      const ids = entry.instance_ids ?? [];
      this.finish(
        task,
        { status: 'canceled', instance_id: ids[0] ?? null, instance_state: ids.length ? 'terminated' : 'not_found', error: CANCELED },
        fullLog,
      );
    }
  }

  /**
   * Runs a playbook for tasks. Null when it was stopped by a shutdown (the
   * service requeues the tasks); otherwise the result and which members a
   * cancel asked to stop.
   */
  private async run(
    name: PlaybookName,
    vars: Record<string, unknown>,
    tasks: Task[],
    cancellable: boolean,
  ): Promise<{ result: RunResult; canceled: Set<string> } | null> {
    const taskIds = tasks.map((task) => task.id);
    const { store, events, log } = this.deps;
    const run = new PlaybookRun({
      playbook: path.join(this.options.playbookDir, `${name}.yml`),
      projectDir: this.options.projectDir,
      ansiblePlaybook: this.options.ansiblePlaybook,
      vars,
      env: this.options.env,
      timeoutSeconds: this.options.taskTimeout,
      onSpawn: (pid, start) => {
        store.setRunner(taskIds, pid, start);
        log.info({ task_ids: taskIds, playbook: `${name}.yml`, pid }, 'playbook started');
      },
      onEvent: (event: AnsibleEvent) => {
        if (event.event === 'task_start') {
          store.setProgress(taskIds, { step: event.step, of: event.of, name: event.name });
          const data = { step: event.step, of: event.of, name: event.name };
          events.record(taskIds.map((taskId) => ({ taskId, type: 'step_start', data })));
        } else if (event.event === 'task_end') {
          const data = {
            step: event.step,
            name: event.name,
            status: event.status,
            duration_ms: event.duration_ms ?? null,
            ...(event.msg ? { msg: event.msg.slice(0, 500) } : {}),
          };
          events.record(taskIds.map((taskId) => ({ taskId, type: 'step_end', data })));
        }
      },
    });
    const entry: ActiveRun = { run, taskIds, canceled: new Set(), cancellable };
    this.active.add(entry);
    if (cancellable) for (const id of taskIds) if (this.cancelRequested.has(id)) entry.canceled.add(id);
    if (this.stopping || entry.canceled.size) run.stop('stopped');
    try {
      const result = await run.done;
      const outcome = result.end === 'completed' ? (result.exitCode === 0 ? 'ok' : 'failed') : result.end === 'spawn_failed' ? 'failed' : result.end;
      this.deps.onRunEnd({ action: name, outcome, seconds: result.durationMs / 1000, tasks: tasks.length });
      log.info({ task_ids: taskIds, playbook: `${name}.yml`, outcome, seconds: result.durationMs / 1000 }, 'playbook ended');
      if (result.end === 'stopped' && entry.canceled.size === 0) return null;
      return { result, canceled: entry.canceled };
    } finally {
      this.active.delete(entry);
    }
  }

  private finish(task: Task, outcome: Outcome, log: string): void {
    this.cancelRequested.delete(task.id);
    if (!this.deps.store.finish(task.id, outcome, log)) return;
    const finished = this.deps.store.get(task.id);
    if (!finished) return;
    this.deps.events.record([{ taskId: task.id, type: 'status', data: taskView(finished) }]);
    const line = { task_id: task.id, action: task.action, status: finished.status, instance_id: finished.instance_id, ip: finished.ip };
    if (finished.status === 'failed') this.deps.log.warn({ ...line, error: finished.error }, 'task failed');
    else this.deps.log.info(line, `task ${finished.status}`);
    this.deps.onFinished(finished);
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

function createOutcome(_task: Task, entry: PlaybookResultEntry | undefined, result: RunResult, why: string): Outcome {
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
