// Task events: every status change and playbook step of a task, stored in
// order (task_events) and pushed live to whoever watches (SSE). Watching a
// task costs nothing extra: the one playbook run feeds every watcher.
import { EventEmitter } from 'node:events';
import type { Db } from './db.js';

export type TaskEventType = 'status' | 'step_start' | 'step_end';

export interface TaskEvent {
  id: number;
  task_id: string;
  at: string;
  type: TaskEventType;
  data: Record<string, unknown>;
}

interface EventRow {
  id: number;
  task_id: string;
  at: string;
  type: TaskEventType;
  data: string;
}

const toEvent = (row: EventRow): TaskEvent => ({ ...row, data: JSON.parse(row.data) as Record<string, unknown> });

export class TaskEvents {
  private readonly emitter = new EventEmitter();
  private readonly stmt;

  constructor(private readonly db: Db) {
    this.emitter.setMaxListeners(0);
    this.stmt = {
      insert: db.prepare('INSERT INTO task_events (task_id, at, type, data) VALUES (?, ?, ?, ?)'),
      since: db.prepare('SELECT id, task_id, at, type, data FROM task_events WHERE task_id = ? AND id > ? ORDER BY id'),
    };
  }

  /** Stores one event for each task (a batch's step is every member's step) and tells watchers. */
  record(taskIds: string[], type: TaskEventType, data: Record<string, unknown>): void {
    const at = new Date().toISOString();
    const json = JSON.stringify(data);
    const events: TaskEvent[] = [];
    this.db.transaction(() => {
      for (const taskId of taskIds) {
        const { lastInsertRowid } = this.stmt.insert.run(taskId, at, type, json);
        events.push({ id: Number(lastInsertRowid), task_id: taskId, at, type, data });
      }
    })();
    for (const event of events) this.emitter.emit(event.task_id, event);
  }

  since(taskId: string, afterId = 0): TaskEvent[] {
    return (this.stmt.since.all(taskId, afterId) as EventRow[]).map(toEvent);
  }

  /** Live events of one task; returns the unsubscribe function. */
  subscribe(taskId: string, listener: (event: TaskEvent) => void): () => void {
    this.emitter.on(taskId, listener);
    return () => this.emitter.off(taskId, listener);
  }
}
