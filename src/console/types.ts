// The API's documents, as the console reads them: named in src/api, taken from
// the types generated from the service's OpenAPI document, so a route whose
// schema changes stops the console's build (see README "Routes").
import type { Exhaustive, TaskAction, TaskStatus } from '../api/documents.js';

export type {
  Health,
  Instance,
  StepEnd,
  StepStart,
  Task,
  TaskAction as Action,
  TaskList,
  TaskStatus as Status,
} from '../api/documents.js';

export const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const satisfies readonly TaskStatus[];
export const ACTIONS = ['create', 'delete'] as const satisfies readonly TaskAction[];
const statusesComplete: Exhaustive<(typeof STATUSES)[number], TaskStatus> = true;
const actionsComplete: Exhaustive<(typeof ACTIONS)[number], TaskAction> = true;
void statusesComplete;
void actionsComplete;

export const TERMINAL: ReadonlySet<TaskStatus> = new Set(['succeeded', 'failed', 'canceled']);
