// The task vocabulary shared by the store, the queue and the routes.

export type TaskStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
export type TaskAction = 'create' | 'delete';
export type InstanceState = 'pending' | 'running' | 'terminated' | 'not_found';

export const TERMINAL: ReadonlySet<TaskStatus> = new Set(['succeeded', 'failed', 'canceled']);

/** What a create keeps: the login to make, with the password only as its hash. */
export interface CreateParams {
  username: string;
  password_hash: string;
}

export interface DeleteParams {
  ip: string;
}

export interface Progress {
  step: number;
  of: number;
  name: string;
}

export interface Task {
  id: string;
  action: TaskAction;
  status: TaskStatus;
  params: CreateParams | DeleteParams;
  ip: string | null;
  instance_id: string | null;
  instance_state: InstanceState | null;
  error: string | null;
  progress: Progress | null;
  attempts: number;
  /** A cancel was asked for while it ran; a restart cleans up instead of running it again. */
  cancel_requested: boolean;
  runner_pid: number | null;
  runner_start: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

/** How a run ended for one task. */
export interface Outcome {
  status: 'succeeded' | 'failed' | 'canceled';
  ip?: string | null;
  instance_id?: string | null;
  instance_state?: InstanceState | null;
  error?: string | null;
}

/** Filters of GET /tasks; every one optional. */
export interface TaskFilter {
  status?: TaskStatus;
  action?: TaskAction;
  ip?: string;
  created_after?: string;
  created_before?: string;
  /** The last id of the previous page: ids are UUIDv7, so they sort by creation time. */
  before_id?: string;
  limit: number;
}

/** A task as clients see it: /status/<id>, /tasks, and the data of every `status` event. */
export function taskView(task: Task) {
  return {
    task_id: task.id,
    action: task.action,
    status: task.status,
    ip: task.ip,
    instance_id: task.instance_id,
    instance_state: task.instance_state,
    error: task.error,
    created_at: task.created_at,
    started_at: task.started_at,
    finished_at: task.finished_at,
    progress: task.progress,
    attempts: task.attempts,
  };
}
export type TaskView = ReturnType<typeof taskView>;
