// What the compatibility routes and the resource routes share: turning a
// request into a task (validation beyond the schema, hashing, refusals as
// HTTP errors) and a task into its public document.
import { SubmitError, type Submitted, type TaskService } from '../tasks/service.js';
import { taskView, type Task } from '../tasks/types.js';
import { HttpError } from './errors.js';
import type { PasswordHasher } from './password.js';
import { SYSTEM_ACCOUNTS, type CreateBody } from './schemas.js';

/** The document of GET /status/<id> and GET /tasks/<id>. */
export const statusDocument = taskView;

/** Runs a service call; its refusals become HTTP errors in the contract's shape. */
export async function orHttpError<T>(call: () => T | Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw toHttpError(error);
  }
}

export function toHttpError(error: unknown): unknown {
  if (!(error instanceof SubmitError)) return error;
  switch (error.kind) {
    case 'key_conflict':
      return new HttpError(409, error.message, { field: 'idempotency-key' });
    case 'not_found':
      return new HttpError(404, error.message);
    case 'finished':
      return new HttpError(409, error.message);
    default:
      return new HttpError(503, error.message, {}, { 'Retry-After': error.kind === 'queue_full' ? '30' : '5' });
  }
}

/** Queues a create from a validated body; the plaintext password goes no further than this. */
export async function submitCreate(service: TaskService, hasher: PasswordHasher, body: CreateBody, key: string | undefined): Promise<Submitted> {
  if (SYSTEM_ACCOUNTS.has(body.username)) {
    throw new HttpError(400, `username "${body.username}" is a system account; choose another name`, { field: 'username' });
  }
  return orHttpError(() => {
    // Refuse before hashing: a full queue or a shutdown should cost nothing.
    if (!key) service.assertCanAccept();
    const password_hash = hasher.hash(body.username, body.password);
    return service.submitCreate({ username: body.username, password: body.password, password_hash }, key ? { key } : undefined);
  });
}

export function submitDelete(service: TaskService, ip: string): Promise<Submitted> {
  return orHttpError(() => service.submitDelete(ip));
}

export const stillRunning = (task: Task, seconds: number) =>
  `the task is still ${task.status} after ${seconds} s; it goes on: follow /status/${task.id}`;
