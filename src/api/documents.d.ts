// The documents of the published API, named for its two clients (the
// command-line client in src/cli and the console in src/console). All but the
// stream events are taken from openapi.d.ts, which is generated from the
// service's /openapi.json: when a route's schema changes, the clients stop
// compiling instead of misreading it. Declarations only, so that both builds
// can read them and neither emits them.
import type { paths } from './openapi.js';

type Json<Response> = Response extends { content: { 'application/json': infer Body } } ? Body : never;

export type Task = Json<paths['/tasks/{id}']['get']['responses'][200]>;
export type TaskStatus = Task['status'];
export type TaskAction = Task['action'];
export type InstanceState = NonNullable<Task['instance_state']>;
export type TaskList = Json<paths['/tasks']['get']['responses'][200]>;
export type Instance = Json<paths['/instances']['get']['responses'][200]>['instances'][number];
export type Health = Json<paths['/healthz']['get']['responses'][200]>;
export type Readiness = Json<paths['/readyz']['get']['responses'][200]>;

// The OpenAPI document describes the event streams (/tasks/<id>/events and
// /events) as text; the payloads of their playbook-step events are documented
// in prose only, so they are typed here.
export interface StepStart {
  task_id: string;
  step: number;
  of: number;
  name: string;
  at: string;
}

export interface StepEnd {
  task_id: string;
  step: number;
  name: string;
  /** ok, changed, failed, skipped or unreachable, as Ansible says. */
  status: string;
  duration_ms: number | null;
  msg?: string;
  at: string;
}

/** `true` when `Listed` names every member of `All`: a client's own list of statuses or actions cannot fall behind the API's. */
export type Exhaustive<Listed, All> = [Exclude<All, Listed>] extends [never] ? true : never;
