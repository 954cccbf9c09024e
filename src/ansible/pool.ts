// Every ansible-playbook the service runs goes through one pool: at most
// EC2_API_CONCURRENCY at once (task batches and instance listings alike), all
// counted in running_playbooks, all stopped at shutdown. A run waits here for
// a slot; one stopped while waiting never starts.
import { EventEmitter } from 'node:events';
import { PlaybookRun, type RunEnd, type RunOptions } from './runner.js';

/** One finished playbook run, for metrics and logs. */
export interface RunReport {
  /** The playbook's name: create, delete, cancel, list. */
  playbook: string;
  /** ok: exit 0; failed: non-zero exit or could not start; timed_out; stopped (shutdown or cancel). */
  outcome: 'ok' | 'failed' | 'timed_out' | 'stopped';
  seconds: number;
  tasks: number;
}

function outcomeOf(end: RunEnd): RunReport['outcome'] {
  switch (end.kind) {
    case 'completed':
      return end.exitCode === 0 ? 'ok' : 'failed';
    case 'spawn_failed':
      return 'failed';
    case 'timed_out':
      return 'timed_out';
    case 'stopped':
      return 'stopped';
  }
}

export class PlaybookPool {
  private readonly waiting: PlaybookRun[] = [];
  private readonly active = new Set<PlaybookRun>();
  private readonly reports = new EventEmitter<{ run: [RunReport] }>();
  /** After stopAll(): the service is stopping, and no new run may start. */
  private closed = false;

  constructor(
    private readonly size: number,
    /** The service's private directory for run folders (runner.ts). */
    private readonly runsDir: string,
  ) {}

  /** ansible-playbook processes running (or starting) now. */
  get running(): number {
    return this.active.size;
  }

  /** Whether a run queued now would start at once. */
  get hasFreeSlot(): boolean {
    return this.active.size + this.waiting.length < this.size;
  }

  /** Queues a run; it starts when a slot is free. */
  run(options: RunOptions): PlaybookRun {
    const run = new PlaybookRun(options, this.runsDir);
    if (this.closed) run.stop('shutdown');
    this.waiting.push(run);
    void run.done.then(
      (result) => {
        this.release(run);
        this.reports.emit('run', {
          playbook: run.name,
          outcome: outcomeOf(result.end),
          seconds: result.durationMs / 1000,
          tasks: run.taskCount,
        });
      },
      () => this.release(run),
    );
    this.next();
    return run;
  }

  onRun(listener: (report: RunReport) => void): () => void {
    this.reports.on('run', listener);
    return () => this.reports.off('run', listener);
  }

  /** Resolves when no playbook runs or waits, or after `ms`. */
  async idle(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.active.size + this.waiting.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops every run, waiting or running, and resolves once they have all ended; runs queued later never start. */
  async stopAll(): Promise<void> {
    this.closed = true;
    const runs = [...this.waiting, ...this.active];
    for (const run of runs) run.stop('shutdown');
    await Promise.all(runs.map((run) => run.done.catch(() => undefined)));
  }

  /** SIGKILLs every running playbook's process group now, synchronously (the process is about to exit). */
  killAll(): void {
    for (const run of this.active) run.kill();
  }

  private release(run: PlaybookRun): void {
    this.active.delete(run);
    const waiting = this.waiting.indexOf(run);
    if (waiting >= 0) this.waiting.splice(waiting, 1);
    this.next();
  }

  private next(): void {
    while (this.active.size < this.size && this.waiting.length > 0) {
      const run = this.waiting.shift()!;
      this.active.add(run);
      run.start();
    }
  }
}
