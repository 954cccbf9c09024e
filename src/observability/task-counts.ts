// Read-only queries for /metrics and /readyz, on the service's database handle.
// Kept apart from the task store: they are for observing, never for deciding.
import type { Db } from '../tasks/db.js';

export interface TaskCount {
  action: string;
  status: string;
  count: number;
}

/** A function that counts the tasks by action and status (one indexed scan of `tasks`). */
export function taskCounter(db: Db): () => TaskCount[] {
  const statement = db.prepare('SELECT action, status, count(*) AS count FROM tasks GROUP BY 1, 2');
  return () => statement.all() as TaskCount[];
}

/** Throws when the database cannot answer a trivial query. */
export function pingDatabase(db: Db): void {
  db.prepare('SELECT 1').get();
}
