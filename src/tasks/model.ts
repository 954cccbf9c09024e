// The task vocabulary, written once: statuses, actions, what each action
// keeps as parameters, and the view clients get. Persisted parameters are
// `unknown` until `decodeParams` has checked them against these schemas.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { DEFAULT_OWNER } from '../config.js';
import { USERNAME_PATTERN } from '../login/accounts.js';

export const TASK_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TERMINAL: ReadonlySet<TaskStatus> = new Set(['succeeded', 'failed', 'canceled']);

export const TASK_ACTIONS = ['create', 'delete'] as const;
export type TaskAction = (typeof TASK_ACTIONS)[number];

export const INSTANCE_STATES = ['pending', 'running', 'terminated', 'not_found'] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

export const asInstanceState = (state: string | null | undefined): InstanceState | null =>
  INSTANCE_STATES.includes(state as InstanceState) ? (state as InstanceState) : null;

/** Dotted-quad IPv4, each part 0–255 without leading zeros: what a delete targets. */
export const IPV4_PATTERN =
  '^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$';

/** What a create keeps: the login to make, with the password only as its SHA-512-crypt hash. */
export const CreateParams = Type.Object(
  { username: Type.String({ pattern: USERNAME_PATTERN }), password_hash: Type.String({ pattern: '^\\$6\\$' }) },
  { additionalProperties: false },
);
export type CreateParams = Static<typeof CreateParams>;

/** What a delete keeps: the public IP of the instance to terminate. */
export const DeleteParams = Type.Object({ ip: Type.String({ pattern: IPV4_PATTERN }) }, { additionalProperties: false });
export type DeleteParams = Static<typeof DeleteParams>;

export type ActionParams = { action: 'create'; params: CreateParams } | { action: 'delete'; params: DeleteParams };

/** Parameters read back from the database, checked; null when the row does not hold what its action needs. */
export function decodeParams(action: string, raw: unknown): ActionParams | null {
  if (action === 'create' && Value.Check(CreateParams, raw)) return { action, params: raw };
  if (action === 'delete' && Value.Check(DeleteParams, raw)) return { action, params: raw };
  return null;
}

/** Why the service queued a task itself (a client's own tasks have none): the delete an expiry queued. */
export const TASK_REASONS = ['expired'] as const;
export type TaskReason = (typeof TASK_REASONS)[number];

/** Who asks: a token's name (what tasks record as `created_by`), and whether it may see and act on everyone's. */
export interface Owner {
  name: string;
  admin: boolean;
}

/** Every request when no API_TOKENS are set: the default owner, who sees everything. */
export const EVERYONE: Owner = { name: DEFAULT_OWNER, admin: true };

/** Whether `owner` may see (and so cancel, delete, extend) what `createdBy` asked for. */
export const canSee = (owner: Owner, createdBy: string): boolean => owner.admin || owner.name === createdBy;

export interface Progress {
  step: number;
  of: number;
  name: string;
}

/** A task as the store reads it. Its parameters are not here: they are read, and checked, only to run it. */
export interface Task {
  id: string;
  action: TaskAction;
  status: TaskStatus;
  ip: string | null;
  instance_id: string | null;
  instance_state: InstanceState | null;
  error: string | null;
  progress: Progress | null;
  attempts: number;
  /** A cancel was recorded (while it ran, or queued after a run): its next run cleans up instead of running it again. */
  cancel_requested: boolean;
  /** The ansible-playbook process running it (pid and kernel start time), while it runs. */
  runner_pid: number | null;
  runner_start: string | null;
  /** The name of the token that asked for it (an expiry's delete: the create's). */
  created_by: string;
  /** Set when the service queued it itself. */
  reason: TaskReason | null;
  /** A create: when its instance is terminated (null: never). */
  expires_at: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

/**
 * Whether a task's next run is the clean-up of a cancel instead of its own
 * run: a create whose cancel was recorded (it may have launched). A delete
 * never is: a queued one is canceled at once, a running one not at all
 * (a delete row from an older release with a cancel recorded runs as a delete).
 */
export const needsCleanUp = (task: Pick<Task, 'action' | 'cancel_requested'> | undefined): boolean =>
  task?.action === 'create' && task.cancel_requested;

/** A task claimed to run, with its parameters checked. */
export type RunnableTask = Task & ActionParams;

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
  /** Only the tasks of this owner (a token that is not an admin). */
  created_by?: string;
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
    created_by: task.created_by,
    reason: task.reason,
    expires_at: task.expires_at,
    created_at: task.created_at,
    started_at: task.started_at,
    finished_at: task.finished_at,
    progress: task.progress,
    attempts: task.attempts,
  };
}
