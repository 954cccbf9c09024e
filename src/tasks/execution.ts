// Execution: a claimed batch becomes playbook runs, and their results become
// task outcomes. One run per action per batch (create.yml, delete.yml), so
// Ansible's start-up is paid once for many tasks while every task still gets
// its own instance, result and error; a task whose result the module reports
// early ends at once. A canceled create has what it launched terminated
// (cancel.yml). Every run goes through the playbook pool.
import path from 'node:path';
import { EMPTY_OUTPUT, followedBy, type CappedText } from '../ansible/output.js';
import type { PlaybookPool } from '../ansible/pool.js';
import type { AnsibleEvent, PlaybookResultEntry, PlaybookRun, RunResult } from '../ansible/runner.js';
import type { TaskEvents } from './events.js';
import { decodeParams, type Outcome, type RunnableTask, type Task } from './model.js';
import { CANCELED, cleanupOutcome, createOutcome, deleteOutcome, entryFor, whyNoResult } from './outcomes.js';
import type { TaskStore } from './store.js';

export interface ExecutionOptions {
  playbookDir: string;
  projectDir: string;
  ansiblePlaybook: string;
  /** Seconds before a playbook run is killed. */
  taskTimeout: number;
  /** Environment for runs: cloud endpoint, region, credentials. */
  env: Record<string, string>;
  /** EC2_API_MAX_ATTEMPTS: runs a task may be interrupted (or fail inside the service) before it is failed. */
  maxAttempts: number;
}

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ExecutionDeps {
  store: TaskStore;
  events: TaskEvents;
  pool: PlaybookPool;
  /** A task ran to its end (whoever waits for it is told; what EC2 holds may have changed). */
  ended(task: Task): void;
  log: Logger;
  /** Tasks went back to `queued` (their run was stopped for another reason than their own cancel). */
  requeued(taskIds: string[]): void;
}

/** A playbook run and the tasks it is for. */
interface Group {
  run: PlaybookRun;
  tasks: RunnableTask[];
  /** A cancel of one of its tasks stops it (a cleanup run is never stopped by a cancel). */
  cancellable: boolean;
  /** The playbook step running now, and since when. */
  step?: { step: number; name: string; startedAt: number };
  /** What its tasks' log already holds (a clean-up run's goes on from the run that was canceled). */
  logBefore?: CappedText;
}

/** The log of a group's tasks: what came before, if anything, then this run's output. */
const groupLog = (group: Group, output: CappedText): CappedText =>
  group.logBefore ? followedBy(group.logBefore, 'cleanup after cancel', output) : output;

/** How long a resolved image is reused before create.yml looks up the newest again. */
const IMAGE_REUSE_MS = 3_600_000;

export class Execution {
  private readonly groups = new Set<Group>();
  /** The image the last create run used: passing it saves each run a look-up (about 0.5 s). */
  private image: { id: string; at: number } | null = null;

  constructor(
    private readonly options: ExecutionOptions,
    private readonly deps: ExecutionDeps,
  ) {}

  /**
   * Runs a claimed batch to its end. Never rejects. A part that throws (a
   * bug, the database failing) does not take the other parts with it: its
   * tasks still running go back to the queue, to be run again (and adopt what
   * they launched) up to EC2_API_MAX_ATTEMPTS, then fail.
   */
  async runBatch(batchId: string): Promise<void> {
    let tasks: RunnableTask[];
    try {
      tasks = this.readBatch(batchId);
    } catch (error) {
      // Not even readable: the tasks stay `running`, and the next start recovers them.
      this.deps.log.error({ err: error, batch: batchId }, 'could not read a claimed batch');
      return;
    }
    const cleanups = tasks.filter((task) => task.cancel_requested);
    const rest = tasks.filter((task) => !task.cancel_requested);
    const parts: [RunnableTask[], () => Promise<void>][] = [
      // A cancel recorded before a crash, or before this batch started: clean up instead of running.
      [cleanups, () => this.cleanUp(cleanups, EMPTY_OUTPUT)],
      ...(['create', 'delete'] as const).map((action): [RunnableTask[], () => Promise<void>] => {
        const group = rest.filter((task) => task.action === action);
        return [group, () => this.runGroup(action, group)];
      }),
    ];
    const ran = await Promise.allSettled(parts.map(([group, work]) => (group.length ? work() : undefined)));
    ran.forEach((outcome, i) => {
      if (outcome.status === 'rejected') this.afterInternalError(parts[i]![0], outcome.reason);
    });
  }

  private afterInternalError(tasks: RunnableTask[], error: unknown): void {
    try {
      this.deps.log.error({ err: error, task_ids: tasks.map((task) => task.id) }, 'running tasks failed unexpectedly');
      const open = this.stillRunning(tasks);
      const retry = open.filter((task) => task.attempts < this.options.maxAttempts);
      this.requeue(retry, false);
      for (const task of open.filter((t) => !retry.includes(t))) {
        this.finish(task, { status: 'failed', error: 'internal error while running the task; the service log has the details' });
      }
    } catch (again) {
      // The database itself fails: the tasks stay `running`, and the next start recovers them.
      this.deps.log.error({ err: again }, 'could not put the tasks of a failed run back in the queue');
    }
  }

  /** Stops the run of a running task (its cancel was recorded); false when no run holds it now. */
  stopRunOf(taskId: string): boolean {
    for (const group of this.groups) {
      if (group.cancellable && group.tasks.some((task) => task.id === taskId)) {
        group.run.stop('cancel');
        return true;
      }
    }
    return false;
  }

  /** The output so far of the run a task is in, or undefined when none runs for it. */
  liveLog(taskId: string): CappedText | undefined {
    for (const group of this.groups) if (group.tasks.some((task) => task.id === taskId)) return groupLog(group, group.run.currentOutput);
    return undefined;
  }

  /** The claimed tasks with their parameters checked; a row that fails the check fails its task. */
  private readBatch(batchId: string): RunnableTask[] {
    const runnable: RunnableTask[] = [];
    for (const { task, params } of this.deps.store.batch(batchId)) {
      const decoded = decodeParams(task.action, params);
      if (decoded) runnable.push({ ...task, ...decoded });
      else {
        this.finish(task, {
          status: 'failed',
          error: `the stored ${task.action} task does not hold valid parameters (the database row was changed or damaged); it was not run`,
        });
      }
    }
    this.deps.events.recordStatus(runnable);
    return runnable;
  }

  private async runGroup(playbook: 'create' | 'delete', tasks: RunnableTask[]): Promise<void> {
    const { store, log } = this.deps;
    const byId = new Map(tasks.map((task) => [task.id, task]));
    const vars = playbook === 'create' ? this.createVars(tasks) : deleteVars(tasks);
    const outcomeOf = (task: RunnableTask, entry: PlaybookResultEntry | undefined, why: string): Outcome =>
      task.action === 'create' ? createOutcome(entry, why) : deleteOutcome(task.params.ip, entry, why);

    const group = this.start(playbook, vars, tasks, true, {
      // A task whose instance is ready ends now, not with the slowest of its batch.
      onResult: (taskId, entry) => {
        const task = byId.get(taskId);
        const current = task && store.get(taskId);
        if (!task || current?.status !== 'running' || current.cancel_requested) return;
        // For this task the step ends here: the rest of the run is its batch-mates'.
        if (group.step) {
          const { step, name, startedAt } = group.step;
          const data = {
            step,
            name,
            status: entry.ok ? 'ok' : 'failed',
            duration_ms: Date.now() - startedAt,
            ...(entry.ok ? {} : { msg: String(entry.error ?? 'failed').slice(0, 500) }),
          };
          this.deps.events.record([{ taskId, type: 'step_end', data }]);
        }
        this.finish(task, outcomeOf(task, entry, ''), group.run);
      },
    });
    // A cancel recorded between the claim and now.
    if (tasks.some((task) => store.isCancelRequested(task.id))) group.run.stop('cancel');
    const result = await this.wait(group);
    if (playbook === 'create' && result.imageId && !('ec2_image_id' in vars)) this.image = { id: result.imageId, at: Date.now() };

    const open = this.stillRunning(tasks);
    if (result.end.kind === 'stopped' && result.end.reason === 'shutdown') {
      this.requeue(open);
      log.warn({ task_ids: open.map((task) => task.id) }, 'stopped by the shutdown: the tasks run again at the next start');
      return;
    }
    const canceled = open.filter((task) => task.cancel_requested);
    const others = open.filter((task) => !task.cancel_requested);
    if (result.end.kind === 'stopped') {
      // Stopped for a batch-mate's cancel: the others run again (a launched instance is adopted).
      this.requeue(others);
    } else {
      const why = whyNoResult(result, this.options.taskTimeout);
      for (const task of others) this.finish(task, outcomeOf(task, entryFor(result.results, task.id), why));
    }
    if (canceled.length) await this.cleanUp(canceled, result.log);
  }

  /** Ends canceled tasks; a create's instance, if it launched one, is terminated (found by its TaskId tag). */
  private async cleanUp(tasks: RunnableTask[], log: CappedText): Promise<void> {
    const creates: RunnableTask[] = [];
    for (const task of tasks) {
      // Its log is the run that was canceled (set when that run ended), if any.
      if (task.action === 'delete') this.finish(task, { status: 'canceled', ip: task.params.ip, error: CANCELED });
      else creates.push(task);
    }
    if (!creates.length) return;
    const group = this.start('cancel', { ec2_api_cancels: creates.map((task) => ({ task_id: task.id })) }, creates, false, { logBefore: log });
    const result = await this.wait(group);
    const open = this.stillRunning(creates);
    if (result.end.kind === 'stopped') {
      // Shutdown: the cancel stays recorded, and the next start cleans up.
      this.requeue(open);
      return;
    }
    const why = whyNoResult(result, this.options.taskTimeout);
    for (const task of open) this.finish(task, cleanupOutcome(entryFor(result.results, task.id), why));
  }

  /** Queues a run of `playbook` for `tasks` in the pool, and tracks it while it runs. */
  private start(
    playbook: 'create' | 'delete' | 'cancel',
    vars: Record<string, unknown>,
    tasks: RunnableTask[],
    cancellable: boolean,
    { logBefore, ...extra }: { onResult?: (taskId: string, entry: PlaybookResultEntry) => void; logBefore?: CappedText } = {},
  ): Group {
    const { store, events, log } = this.deps;
    const ids = tasks.map((task) => task.id);
    const run = this.deps.pool.run({
      playbook: path.join(this.options.playbookDir, `${playbook}.yml`),
      projectDir: this.options.projectDir,
      ansiblePlaybook: this.options.ansiblePlaybook,
      vars,
      env: this.options.env,
      timeoutSeconds: this.options.taskTimeout,
      taskCount: tasks.length,
      onSpawn: (pid, startTime) => {
        store.setRunner(ids, pid, startTime);
        log.info({ task_ids: ids, playbook: `${playbook}.yml`, pid }, 'playbook started');
      },
      onEvent: (event: AnsibleEvent) => {
        if (event.event !== 'task_start' && event.event !== 'task_end') return;
        // Members that already ended (their result came early) show no more steps.
        const live = ids.filter((id) => store.get(id)?.status === 'running');
        if (event.event === 'task_start') {
          group.step = { step: event.step, name: event.name, startedAt: Date.now() };
          const data = { step: event.step, of: event.of, name: event.name };
          store.setProgress(live, data);
          events.record(live.map((taskId) => ({ taskId, type: 'step_start', data })));
        } else {
          const data = {
            step: event.step,
            name: event.name,
            status: event.status,
            duration_ms: event.duration_ms ?? null,
            ...(event.msg ? { msg: event.msg.slice(0, 500) } : {}),
          };
          events.record(live.map((taskId) => ({ taskId, type: 'step_end', data })));
        }
      },
      ...extra,
    });
    const group: Group = { run, tasks, cancellable, logBefore };
    this.groups.add(group);
    return group;
  }

  /** The run's result; its output becomes the log of every task it ran (they share it). */
  private async wait(group: Group): Promise<RunResult> {
    try {
      const result = await group.run.done;
      this.deps.store.setLog(group.run.id, group.tasks.map((task) => task.id), groupLog(group, result.log));
      this.deps.log.info(
        { task_ids: group.tasks.map((task) => task.id), playbook: `${group.run.name}.yml`, end: result.end.kind, seconds: result.durationMs / 1000 },
        'playbook ended',
      );
      return result;
    } finally {
      this.groups.delete(group);
    }
  }

  /** The tasks still running, with their cancel as recorded now. */
  private stillRunning(tasks: RunnableTask[]): RunnableTask[] {
    return tasks.flatMap((task) => {
      const current = this.deps.store.get(task.id);
      return current?.status === 'running' ? [{ ...task, cancel_requested: current.cancel_requested }] : [];
    });
  }

  private createVars(tasks: RunnableTask[]): Record<string, unknown> {
    const image = this.image && Date.now() - this.image.at < IMAGE_REUSE_MS ? { ec2_image_id: this.image.id } : {};
    return {
      ec2_api_tasks: tasks.flatMap((task) => (task.action === 'create' ? [{ task_id: task.id, ...task.params }] : [])),
      ...image,
    };
  }

  /** running → queued; `refund` (the default) gives the attempt back: the run was stopped on purpose, not by a failure of the task. */
  private requeue(tasks: Task[], refund = true): void {
    if (!tasks.length) return;
    const ids = tasks.map((task) => task.id);
    this.deps.store.requeue(ids, refund);
    this.deps.events.recordStatus(ids.flatMap((id) => this.deps.store.get(id) ?? []));
    this.deps.requeued(ids);
  }

  /** running → a terminal state, told to everyone watching or waiting. */
  private finish(task: Task, outcome: Outcome, run?: PlaybookRun): void {
    const { store, events } = this.deps;
    if (!store.finish(task.id, outcome)) return;
    if (run) store.setLogSoFar(run.id, [task.id], run.currentOutput);
    const finished = store.get(task.id)!;
    events.recordStatus([finished]);
    this.deps.ended(finished);
    const line = { task_id: task.id, action: task.action, status: finished.status, instance_id: finished.instance_id, ip: finished.ip };
    if (finished.status === 'failed') this.deps.log.warn({ ...line, error: finished.error }, 'task failed');
    else this.deps.log.info(line, `task ${finished.status}`);
  }
}

function deleteVars(tasks: RunnableTask[]): Record<string, unknown> {
  return { ec2_api_deletes: tasks.flatMap((task) => (task.action === 'delete' ? [{ task_id: task.id, ip: task.params.ip }] : [])) };
}
