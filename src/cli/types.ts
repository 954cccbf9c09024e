// The documents the client reads, named in src/api (taken from the types
// generated from the service's OpenAPI document): when a route's schema
// changes, the code using these stops compiling.
import type { Exhaustive, TaskAction, TaskStatus, Task } from '../api/documents.js';

export type { Health, Readiness, Task, TaskAction, TaskStatus } from '../api/documents.js';

/** Every task status, checked both ways against the API's own list. */
export const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const satisfies readonly TaskStatus[];
export const ACTIONS = ['create', 'delete'] as const satisfies readonly TaskAction[];
const statusesComplete: Exhaustive<(typeof STATUSES)[number], TaskStatus> = true;
const actionsComplete: Exhaustive<(typeof ACTIONS)[number], TaskAction> = true;
void statusesComplete;
void actionsComplete;

const TERMINAL: ReadonlySet<TaskStatus> = new Set(['succeeded', 'failed', 'canceled']);
export const isTerminal = (task: Pick<Task, 'status'>) => TERMINAL.has(task.status);
