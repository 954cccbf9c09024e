// Task events: every status change and playbook step of every task, stored
// in order (task_events) and pushed live to whoever watches one task or all
// of them (SSE). The row id orders events across tasks: it is the SSE event
// id of both feeds, so any client resumes with Last-Event-ID.
import { EventEmitter } from 'node:events';
import type { Db } from './db.js';
import { taskView, type Task } from './model.js';

export type TaskEventType = 'status' | 'step_start' | 'step_end';

export interface TaskEvent {
  id: number;
  task_id: string;
  at: string;
  type: TaskEventType;
  data: Record<string, unknown>;
}

export interface EventRow {
  id: number;
  task_id: string;
  at: string;
  type: TaskEventType;
  data: string;
}

/** One event to record: a status change carries the task's own document, a step is shared by a batch. */
export interface NewEvent {
  taskId: string;
  type: TaskEventType;
  data: Record<string, unknown>;
}

/** Listeners of every task's events subscribe under this name. */
export const ALL = Symbol('all tasks');

export const statusEvent = (task: Task): NewEvent => ({ taskId: task.id, type: 'status', data: taskView(task) });

export const toEvent = (row: EventRow): TaskEvent => ({ ...row, data: JSON.parse(row.data) as Record<string, unknown> });

/**
 * The events as the engine uses them, on either database. On SQLite a
 * state change's event is published by the process that wrote it; on
 * PostgreSQL every node publishes every node's events, read back from the
 * table in order (pg-events.ts).
 */
export interface EventLog {
  /** Tells the watchers of events this process committed (a no-op where the table is read back instead). */
  publish(events: TaskEvent[]): void;
  /** Stores and publishes playbook steps (a status event is written by the store with its change). */
  record(events: NewEvent[]): Promise<void>;
  since(taskId: string, afterId?: number): Promise<TaskEvent[]>;
  after(afterId: number, limit: number): Promise<TaskEvent[]>;
  lastId(): Promise<number>;
  subscribe(taskId: string | null, listener: (event: TaskEvent) => void): () => void;
}

export class TaskEvents implements EventLog {
  private readonly emitter = new EventEmitter();
  private readonly stmt;

  constructor(private readonly db: Db) {
    // Every SSE client is one listener; there may be many.
    this.emitter.setMaxListeners(0);
    this.stmt = {
      insert: db.prepare('INSERT INTO task_events (task_id, at, type, data) VALUES (?, ?, ?, ?)'),
      since: db.prepare('SELECT id, task_id, at, type, data FROM task_events WHERE task_id = ? AND id > ? ORDER BY id'),
      after: db.prepare('SELECT id, task_id, at, type, data FROM task_events WHERE id > ? ORDER BY id LIMIT ?'),
      last: db.prepare('SELECT coalesce(max(id), 0) AS id FROM task_events'),
    };
  }

  /**
   * Stores events (in the caller's transaction when there is one) and
   * returns them; `publish` tells the watchers. Split so that a write inside
   * a group commit is announced only once it is on disk.
   */
  store(events: NewEvent[]): TaskEvent[] {
    const at = new Date().toISOString();
    return events.map(({ taskId, type, data }) => {
      const { lastInsertRowid } = this.stmt.insert.run(taskId, at, type, JSON.stringify(data));
      return { id: Number(lastInsertRowid), task_id: taskId, at, type, data };
    });
  }

  publish(events: TaskEvent[]): void {
    for (const event of events) {
      this.emitter.emit(event.task_id, event);
      this.emitter.emit(ALL, event);
    }
  }

  /** Stores and publishes at once, in one transaction (playbook steps; a status event is written by the store with its change). */
  async record(events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    this.publish(this.db.transaction(() => this.store(events))());
  }

  /** One task's events after `afterId`, oldest first. */
  async since(taskId: string, afterId = 0): Promise<TaskEvent[]> {
    return (this.stmt.since.all(taskId, afterId) as EventRow[]).map(toEvent);
  }

  /** Every task's events after `afterId`, oldest first, at most `limit`. */
  async after(afterId: number, limit: number): Promise<TaskEvent[]> {
    return (this.stmt.after.all(afterId, limit) as EventRow[]).map(toEvent);
  }

  /** The newest event's id (0 when there is none): where a feed starting now begins. */
  async lastId(): Promise<number> {
    return (this.stmt.last.get() as { id: number }).id;
  }

  /** Live events of one task, or of every task (`taskId` null); returns the unsubscribe function. */
  subscribe(taskId: string | null, listener: (event: TaskEvent) => void): () => void {
    const name = taskId ?? ALL;
    this.emitter.on(name, listener);
    return () => this.emitter.off(name, listener);
  }
}
