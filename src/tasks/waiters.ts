// Callers waiting for a task to end (sync routes, cancel): each gets the task
// once it is terminal, or its state when its time is up or the service stops.
import { EventEmitter } from 'node:events';
import { TERMINAL, type Task } from './model.js';

const STOPPING = Symbol('stopping');

export class Waiters {
  private readonly emitter = new EventEmitter();
  private stopped = false;

  constructor(private readonly read: (id: string) => Promise<Task | undefined>) {
    // Every sync request waits on one listener; thousands may wait at once.
    this.emitter.setMaxListeners(0);
  }

  /** The task once it is terminal; its current state when `ms` passes first, or when the service stops. */
  async waitFor(id: string, ms: number): Promise<Task | undefined> {
    if (this.stopped) return this.read(id);
    // Listening before the read (which is async): an end that comes while it is under way is not missed.
    let done!: () => void;
    const signalled = new Promise<void>((resolve) => (done = resolve));
    const timer = setTimeout(done, ms);
    this.emitter.on(id, done);
    this.emitter.on(STOPPING, done);
    try {
      const current = await this.read(id);
      if (!current || TERMINAL.has(current.status) || this.stopped) return current;
      await signalled;
      return await this.read(id);
    } finally {
      clearTimeout(timer);
      this.emitter.off(id, done);
      this.emitter.off(STOPPING, done);
    }
  }

  /** A task has ended. */
  ended(id: string): void {
    this.emitter.emit(id);
  }

  /** The service stops: everyone waiting answers now, with the task as it stands. */
  releaseAll(): void {
    this.stopped = true;
    this.emitter.emit(STOPPING);
  }
}
