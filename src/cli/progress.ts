// Live progress of one task over its playbook's steps, fed by the task's
// event stream: a cli-progress bar on a terminal, plain lines otherwise.
import cliProgress from 'cli-progress';
import type { TaskEvent } from './events.js';
import type { Output } from './output.js';

export interface Progress {
  event(event: TaskEvent): void;
  /** Something the user should know while waiting (a reconnection). */
  notice(message: string): void;
  /** Leaves the bar's last state on screen; nothing is drawn after this. */
  stop(): void;
}

export function progress(o: Output, label: string): Progress {
  return o.errTty ? new Bar(label) : new Lines(o, label);
}

const QUEUED = 'queued: waiting for a playbook run';

class Bar implements Progress {
  private readonly bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: '{label} [{bar}] {steps} {state} {duration_formatted}',
      hideCursor: true,
      barsize: 24,
      fps: 10,
      gracefulExit: false, // Ctrl-C is ours: it stops following and says so
    },
    cliProgress.Presets.shades_classic,
  );
  private total = 0;
  private stopped = false;

  constructor(private readonly label: string) {
    this.bar.start(1, 0, { label, steps: '', state: 'connecting…' });
  }

  event(event: TaskEvent): void {
    if (this.stopped) return;
    switch (event.type) {
      case 'status':
        if (event.data.status === 'queued') this.state(QUEUED);
        else if (event.data.status === 'running' && this.total === 0) this.state('running: starting the playbook');
        else if (event.data.status === 'succeeded') this.set(this.total || 1, this.total || 1, 'done');
        else if (event.data.status !== 'running') this.state(event.data.status);
        break;
      case 'step_start':
        this.set(event.data.step - 1, event.data.of, event.data.name);
        break;
      case 'step_end':
        if (event.data.status === 'failed') this.state(`failed at: ${event.data.name}`);
        else this.set(event.data.step, this.total, event.data.name);
        break;
    }
  }

  notice(message: string): void {
    this.state(message);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.bar.stop();
  }

  private set(value: number, total: number, state: string): void {
    this.total = total;
    this.bar.setTotal(Math.max(total, 1));
    this.bar.update(value, { steps: `${value}/${total}`, state });
  }

  private state(state: string): void {
    this.bar.update({ state, label: this.label });
  }
}

class Lines implements Progress {
  private last = '';

  constructor(
    private readonly o: Output,
    private readonly label: string,
  ) {}

  event(event: TaskEvent): void {
    switch (event.type) {
      case 'status':
        if (event.data.status === 'queued' || event.data.status === 'running') this.say(event.data.status);
        break;
      case 'step_start':
        this.say(`step ${event.data.step}/${event.data.of}: ${event.data.name}`);
        break;
      case 'step_end':
        if (event.data.status === 'failed') this.say(`step ${event.data.step} failed: ${event.data.msg ?? event.data.name}`);
        break;
    }
  }

  notice(message: string): void {
    this.say(message);
  }

  stop(): void {}

  private say(text: string): void {
    if (text === this.last) return;
    this.last = text;
    this.o.err(`${this.label}: ${text}`);
  }
}
