// The documents the client reads, named, all taken from the types generated
// from the service's OpenAPI document (api.ts): when a route's schema
// changes, the code using these stops compiling.
import type { paths } from './api.js';

type Json<Response> = Response extends { content: { 'application/json': infer Body } } ? Body : never;

export type Task = Json<paths['/tasks/{id}']['get']['responses'][200]>;
export type TaskStatus = Task['status'];
export type TaskAction = Task['action'];
export type TaskList = Json<paths['/tasks']['get']['responses'][200]>;
export type Instance = Json<paths['/instances']['get']['responses'][200]>['instances'][number];
export type Health = Json<paths['/healthz']['get']['responses'][200]>;
export type Readiness = Json<paths['/readyz']['get']['responses'][200]>;
export type ErrorBody = Json<paths['/tasks/{id}']['get']['responses'][404]>;

/** Every task status, checked both ways against the API's own list. */
export const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const satisfies readonly TaskStatus[];
export const ACTIONS = ['create', 'delete'] as const satisfies readonly TaskAction[];
type Exhaustive<Listed, All> = [Exclude<All, Listed>] extends [never] ? true : never;
const statusesComplete: Exhaustive<(typeof STATUSES)[number], TaskStatus> = true;
const actionsComplete: Exhaustive<(typeof ACTIONS)[number], TaskAction> = true;
void statusesComplete;
void actionsComplete;

const TERMINAL: ReadonlySet<TaskStatus> = new Set(['succeeded', 'failed', 'canceled']);
export const isTerminal = (task: Pick<Task, 'status'>) => TERMINAL.has(task.status);
