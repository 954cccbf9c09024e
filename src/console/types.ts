// The API's documents, as the console reads them (see README "Routes").

export type Status = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
export type Action = 'create' | 'delete';

export interface Progress {
  step: number;
  of: number;
  name: string;
}

export interface Task {
  task_id: string;
  action: Action;
  status: Status;
  ip: string | null;
  instance_id: string | null;
  instance_state: string | null;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  progress: Progress | null;
  attempts: number;
}

export interface TaskList {
  tasks: Task[];
  next_cursor: string | null;
  last_event_id: number;
}

export interface Health {
  status: 'ok';
  cloud: { kind: 'local-emulator' | 'aws' | 'endpoint' | string; endpoint: string | null; region: string; description: string };
  accepting: boolean;
  paused: boolean;
  queued: number;
  running_playbooks: number;
}

export interface Instance {
  instance_id: string;
  public_ip: string | null;
  state: string;
  launch_time: string | null;
  task_id: string | null;
  name?: string | null;
  instance_type?: string | null;
}

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
  status: 'ok' | 'changed' | 'failed' | 'skipped' | 'unreachable' | string;
  duration_ms: number | null;
  msg?: string;
  at: string;
}

export const STATUSES: Status[] = ['queued', 'running', 'succeeded', 'failed', 'canceled'];
export const TERMINAL: ReadonlySet<Status> = new Set(['succeeded', 'failed', 'canceled']);
export const ACTIONS: Action[] = ['create', 'delete'];
