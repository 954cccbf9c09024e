// What the task routes share: finding a task by id, the headers of an
// accepted one, waiting for it (the sync routes and ?wait=true) and the one
// mapping from how it ended to an HTTP status.
import type { FastifyReply } from 'fastify';
import { canSee, TERMINAL, type Owner, type Task } from '../tasks/model.js';
import { TASK_NOT_FOUND } from '../tasks/refusal.js';
import type { Submitted, TaskService } from '../tasks/service.js';
import { HttpError } from './errors.js';
import type { CreateBody } from './schemas.js';

/**
 * The task with this id (matched case-insensitively) if `owner` may see it,
 * else a 404 — another token's task answers as an unknown one does: GET
 * /status/<id>, GET /tasks/<id> and its log and events, cancel.
 */
export async function findTask(tasks: TaskService, id: string, owner: Owner): Promise<Task> {
  const task = await tasks.get(id.toLowerCase());
  if (!task || !canSee(owner, task.created_by)) throw new HttpError(404, TASK_NOT_FOUND);
  return task;
}

/** The headers of an accepted task: where to follow it, and whether the answer replays an earlier request (Idempotency-Key). */
export function acceptedHeaders(reply: FastifyReply, submitted: Submitted, location: string): void {
  reply.header('Location', location);
  if (submitted.replayed) reply.header('Idempotent-Replayed', 'true');
}

/**
 * The status code of a task a client waited for: `success` when it
 * succeeded, 404 for a delete that found no managed instance, 502 for any
 * other end (failed, canceled), 504 while it still runs.
 */
export function waitedStatus<Success extends number>(task: Task, success: Success): Success | 404 | 502 | 504 {
  if (!TERMINAL.has(task.status)) return 504;
  if (task.status === 'succeeded') return success;
  if (task.action === 'delete' && task.instance_state === 'not_found') return 404;
  return 502;
}

/** The task once it has ended, or as it stands after `syncWait` seconds (or when the service stops). */
export async function waitForEnd(tasks: TaskService, submitted: Submitted, syncWait: number): Promise<Task> {
  return (await tasks.waitFor(submitted.task.id, syncWait * 1000)) ?? submitted.task;
}

export const stillRunning = (task: Task, seconds: number) =>
  `the task is still ${task.status} after ${seconds} s; it goes on: follow /status/${task.id}`;

/** A create's arguments from its request: the login, then who asks, the lifetime and the Idempotency-Key. */
export function createRequest(request: {
  body: CreateBody;
  headers: { 'idempotency-key'?: string };
  owner: Owner;
}): Parameters<TaskService['createTask']> {
  const { ttl, ...login } = request.body;
  return [login, { owner: request.owner, ttl, idempotencyKey: request.headers['idempotency-key'] }];
}
