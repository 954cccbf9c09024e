// Execution: a claimed batch becomes playbook runs, and their results become
// task outcomes. One run per action per batch (create.yml, delete.yml), so
// Ansible's start-up is paid once for many tasks while every task still gets
// its own instance, result and error; a task whose result the module reports
// early ends at once. A canceled create has what it launched terminated
// (cancel.yml). Every run goes through the playbook pool. Every state change
// is one call to the store, which tells whoever needs to know (store.ts).
import path from 'node:path';
import { EMPTY_OUTPUT, followedBy, type CappedText } from '../ansible/output.js';
import type { PlaybookPool } from '../ansible/pool.js';
import type { AnsibleEvent, PlaybookResultEntry, PlaybookRun, RunResult } from '../ansible/runner.js';
import type { EventLog } from './events.js';
import { decodeParams, needsCleanUp, type Outcome, type RunnableTask, type Task } from './model.js';
import { cleanupOutcome, createOutcome, deleteOutcome, entryFor, whyNoResult } from './outcomes.js';
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
  /** For the playbook steps' events (status events are the store's). */
  events: EventLog;
  pool: PlaybookPool;
  log: Logger;
}

/** A playbook run and the tasks it is for. */
interface Group {
  run: PlaybookRun;
  tasks: RunnableTask[];
  /** A cancel of one of its tasks stops it: a create run only (a delete is never canceled once running, a clean-up never). */
  cancellable: boolean;
  /** Tasks its results ended early, still being written: awaited before the run's end is read. */
  ending: Promise<unknown>[];
  /**
   * The run's bookkeeping (runner, progress, steps' events), one write after
   * the other: the store's reads are async, and a step's events must not
   * overtake the one before. Awaited, like `ending`, before the end is read.
   */
  bookkeeping: { chain: Promise<void> };
  /** Appends a write to `bookkeeping`; its own outcome. */
  then<T>(write: () => Promise<T>): Promise<T>;
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
    let unreadable: Promise<unknown>;
    try {
      ({ tasks, unreadable } = await this.readBatch(batchId));
    } catch (error) {
      // Not even readable: the tasks stay `running`, and the next start recovers them.
      this.deps.log.error({ err: error, batch: batchId }, 'could not read a claimed batch');
      return;
    }
    const cleanups = tasks.filter(needsCleanUp);
    const rest = tasks.filter((task) => !needsCleanUp(task));
    const parts: [RunnableTask[], () => Promise<void>][] = [
      // A cancel recorded before a crash, or before this batch started: clean up instead of running.
      [cleanups, () => this.cleanUp(cleanups, EMPTY_OUTPUT)],
      ...(['create', 'delete'] as const).map((action): [RunnableTask[], () => Promise<void>] => {
        const group = rest.filter((task) => task.action === action);
        return [group, () => this.runGroup(action, group)];
      }),
    ];
    const ran = await Promise.allSettled([unreadable, ...parts.map(([group, work]) => (group.length ? work() : undefined))]);
    await Promise.all(
      ran.slice(1).map((outcome, i) => (outcome.status === 'rejected' ? this.afterInternalError(parts[i]![0], outcome.reason) : undefined)),
    );
    if (ran[0]!.status === 'rejected') this.deps.log.error({ err: ran[0].reason, batch: batchId }, 'could not fail a task whose row is damaged');
  }

  private async afterInternalError(tasks: RunnableTask[], error: unknown): Promise<void> {
    try {
      this.deps.log.error({ err: error, task_ids: tasks.map((task) => task.id) }, 'running tasks failed unexpectedly');
      const open = await this.stillRunning(tasks);
      const retry = open.filter((task) => task.attempts < this.options.maxAttempts);
      await this.deps.store.requeue(ids(retry), false);
      await Promise.all(
        open
          .filter((t) => !retry.includes(t))
          .map((task) => this.deps.store.finish(task.id, { status: 'failed', error: 'internal error while running the task; the service log has the details' })),
      );
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

  /** The tasks of the runs going on now (some may have ended already: their result came early). */
  runningTaskIds(): string[] {
    return [...this.groups].flatMap((group) => group.tasks.map((task) => task.id));
  }

  /** The output so far of the run a task is in, or undefined when none runs for it. */
  liveLog(taskId: string): CappedText | undefined {
    for (const group of this.groups) if (group.tasks.some((task) => task.id === taskId)) return groupLog(group, group.run.currentOutput);
    return undefined;
  }

  /** The claimed tasks with their parameters checked; a row that fails the check fails its task (`unreadable`, being written). */
  private async readBatch(batchId: string): Promise<{ tasks: RunnableTask[]; unreadable: Promise<unknown> }> {
    const runnable: RunnableTask[] = [];
    const failing: Promise<unknown>[] = [];
    for (const { task, params } of await this.deps.store.batch(batchId)) {
      const decoded = decodeParams(task.action, params);
      if (decoded) runnable.push({ ...task, ...decoded });
      else {
        failing.push(
          this.deps.store.finish(task.id, {
            status: 'failed',
            error: `the stored ${task.action} task does not hold valid parameters (the database row was changed or damaged); it was not run`,
          }),
        );
      }
    }
    return { tasks: runnable, unreadable: Promise.all(failing) };
  }

  private async runGroup(playbook: 'create' | 'delete', tasks: RunnableTask[]): Promise<void> {
    const { store, log } = this.deps;
    const byId = new Map(tasks.map((task) => [task.id, task]));
    const vars = playbook === 'create' ? this.createVars(tasks) : deleteVars(tasks);
    const outcomeOf = (task: RunnableTask, entry: PlaybookResultEntry | undefined, why: string): Outcome =>
      task.action === 'create' ? createOutcome(entry, why) : deleteOutcome(task.params.ip, entry, why);

    const group = this.start(playbook, vars, tasks, playbook === 'create', {
      // A task whose instance is ready ends now, not with the slowest of its batch.
      onResult: (taskId, entry) => {
        const task = byId.get(taskId);
        // In `ending` from this tick on: the run's end waits for the read below and the write it leads to.
        if (!task) return;
        // For this task the step ends here (read now: the step may move on while the task is read).
        const step = group.step && {
          step: group.step.step,
          name: group.step.name,
          status: entry.ok ? 'ok' : 'failed',
          duration_ms: Date.now() - group.step.startedAt,
          ...(entry.ok ? {} : { msg: String(entry.error ?? 'failed').slice(0, 500) }),
        };
        group.ending.push(group.then(() => this.endEarly(group, task, outcomeOf(task, entry, ''), step)));
      },
    });
    // A cancel recorded between the claim and now.
    const current = await Promise.all(tasks.map((task) => store.get(task.id)));
    if (current.some((task) => needsCleanUp(task))) group.run.stop('cancel');
    const result = await this.wait(group);
    if (playbook === 'create' && result.imageId && !('ec2_image_id' in vars)) this.image = { id: result.imageId, at: Date.now() };

    const open = await this.stillRunning(tasks);
    if (result.end.kind === 'stopped' && result.end.reason === 'shutdown') {
      await store.requeue(ids(open), true);
      log.warn({ task_ids: ids(open) }, 'stopped by the shutdown: the tasks run again at the next start');
      return;
    }
    const canceled = open.filter(needsCleanUp);
    const others = open.filter((task) => !needsCleanUp(task));
    if (result.end.kind === 'stopped') {
      // Stopped for a batch-mate's cancel (only a create run is): the others run again, and adopt what they launched.
      await store.requeue(ids(others), true);
    } else {
      const why = whyNoResult(result, this.options.taskTimeout);
      await Promise.all(others.map((task) => store.finish(task.id, outcomeOf(task, entryFor(result.results, task.id), why))));
    }
    if (canceled.length) await this.cleanUp(canceled, result.log);
  }

  /** A task whose result came before its run ended: it ends now, not with the slowest of its batch (unless it ended, or is being canceled). */
  private async endEarly(group: Group, task: RunnableTask, outcome: Outcome, step: Record<string, unknown> | undefined): Promise<unknown> {
    const current = await this.deps.store.get(task.id);
    if (current?.status !== 'running' || current.cancel_requested) return undefined;
    // For this task the step ends here: the rest of the run is its batch-mates'.
    if (step) await this.deps.events.record([{ taskId: task.id, type: 'step_end', data: step }]);
    return this.deps.store.finish(task.id, outcome, { runId: group.run.id, log: group.run.currentOutput });
  }

  /** Ends canceled creates: what each launched, if anything, is terminated (found by its TaskId tag). */
  private async cleanUp(creates: RunnableTask[], log: CappedText): Promise<void> {
    const group = this.start('cancel', { ec2_api_cancels: creates.map((task) => ({ task_id: task.id })) }, creates, false, { logBefore: log });
    const result = await this.wait(group);
    const open = await this.stillRunning(creates);
    if (result.end.kind === 'stopped') {
      // Shutdown: the cancel stays recorded, and the next start cleans up.
      await this.deps.store.requeue(ids(open), true);
      return;
    }
    const why = whyNoResult(result, this.options.taskTimeout);
    await Promise.all(open.map((task) => this.deps.store.finish(task.id, cleanupOutcome(entryFor(result.results, task.id), why))));
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
    const bookkeeping = { chain: Promise.resolve() };
    /** Appends to the run's bookkeeping: in order, and a failed write is logged without stopping the ones after it. */
    const then = <T>(write: () => Promise<T>): Promise<T> => {
      const written = bookkeeping.chain.then(write);
      bookkeeping.chain = written.then(
        () => undefined,
        (error: unknown) => log.error({ err: error, task_ids: ids }, 'could not record a playbook step or result'),
      );
      return written;
    };
    const run = this.deps.pool.run({
      playbook: path.join(this.options.playbookDir, `${playbook}.yml`),
      projectDir: this.options.projectDir,
      ansiblePlaybook: this.options.ansiblePlaybook,
      vars,
      env: this.options.env,
      timeoutSeconds: this.options.taskTimeout,
      taskCount: tasks.length,
      onSpawn: (pid, startTime) => {
        then(() => store.setRunner(ids, pid, startTime));
        log.info({ task_ids: ids, playbook: `${playbook}.yml`, pid }, 'playbook started');
      },
      onEvent: (event: AnsibleEvent) => {
        if (event.event !== 'task_start' && event.event !== 'task_end') return;
        if (event.event === 'task_start') group.step = { step: event.step, name: event.name, startedAt: Date.now() };
        then(() => this.recordStep(ids, event));
      },
      ...extra,
    });
    const group: Group = { run, tasks, cancellable, logBefore, ending: [], bookkeeping, then };
    this.groups.add(group);
    return group;
  }

  /** A step's progress and events, for the members still running (one whose result came early shows no more steps). */
  private async recordStep(ids: string[], event: AnsibleEvent & { event: 'task_start' | 'task_end' }): Promise<void> {
    const { store, events } = this.deps;
    const live = (await Promise.all(ids.map((id) => store.get(id)))).flatMap((task) => (task?.status === 'running' ? [task.id] : []));
    if (event.event === 'task_start') {
      const data = { step: event.step, of: event.of, name: event.name };
      await store.setProgress(live, data);
      await events.record(live.map((taskId) => ({ taskId, type: 'step_start', data })));
    } else {
      const data = {
        step: event.step,
        name: event.name,
        status: event.status,
        duration_ms: event.duration_ms ?? null,
        ...(event.msg ? { msg: event.msg.slice(0, 500) } : {}),
      };
      await events.record(live.map((taskId) => ({ taskId, type: 'step_end', data })));
    }
  }

  /** The run's result (once the tasks it ended early are written); its output becomes the log of every task it ran (they share it). */
  private async wait(group: Group): Promise<RunResult> {
    try {
      const result = await group.run.done;
      await group.bookkeeping.chain;
      await Promise.allSettled(group.ending);
      await this.deps.store.setLog(group.run.id, group.tasks.map((task) => task.id), groupLog(group, result.log));
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
  private async stillRunning(tasks: RunnableTask[]): Promise<RunnableTask[]> {
    const now = await Promise.all(tasks.map((task) => this.deps.store.get(task.id)));
    return tasks.flatMap((task, i) => {
      const current = now[i];
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
}

function deleteVars(tasks: RunnableTask[]): Record<string, unknown> {
  return { ec2_api_deletes: tasks.flatMap((task) => (task.action === 'delete' ? [{ task_id: task.id, ip: task.params.ip }] : [])) };
}

const ids = (tasks: Task[]): string[] => tasks.map((task) => task.id);
