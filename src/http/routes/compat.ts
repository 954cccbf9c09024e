// The five routes of the original Flask service, with its paths and field
// names (../shared/API.md). Sync routes queue a task like the async ones and
// wait for it; the task goes on if the client leaves.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { SubmitError, type Submitted, type TaskService } from '../../tasks/service.js';
import { TERMINAL, type Task } from '../../tasks/types.js';
import { HttpError } from '../errors.js';
import { sha512Crypt } from '../password.js';
import {
  CreateBody,
  ErrorBody,
  IdempotencyHeaders,
  IpParams,
  OperationResult,
  Queued,
  SYSTEM_ACCOUNTS,
  TaskIdParams,
  TaskStatus,
} from '../schemas.js';

export interface CompatOptions {
  service: TaskService;
  /** Seconds a sync route waits before answering 504. */
  syncWait: number;
}

export function statusDocument(task: Task) {
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

/** Maps a refused submission to 503/409 with the contract's error shape. */
function submitOrThrow(submit: () => Submitted): Submitted {
  try {
    return submit();
  } catch (error) {
    if (!(error instanceof SubmitError)) throw error;
    if (error.kind === 'key_conflict') throw new HttpError(409, error.message, { field: 'idempotency-key' });
    throw new HttpError(503, error.message, {}, { 'Retry-After': error.kind === 'queue_full' ? '30' : '5' });
  }
}

function checkUsername(username: string): void {
  if (SYSTEM_ACCOUNTS.has(username)) {
    throw new HttpError(400, `username "${username}" is a system account; choose another name`, { field: 'username' });
  }
}

function queued(reply: FastifyReply, submitted: Submitted, message: string) {
  reply.header('Location', `/status/${submitted.task.id}`);
  if (submitted.replayed) reply.header('Idempotent-Replayed', 'true');
  return reply.code(202).send({ task_id: submitted.task.id, message });
}

const stillRunning = (task: Task, seconds: number) =>
  `the task is still ${task.status} after ${seconds} s; it goes on: follow /status/${task.id}`;

const compatRoutes: FastifyPluginAsyncTypebox<CompatOptions> = async (app, { service, syncWait }) => {
  const createTask = (body: CreateBody, key: string | undefined) => {
    checkUsername(body.username);
    return submitOrThrow(() => {
      // Refuse before hashing: a full queue or a shutdown should cost nothing.
      if (!key) service.assertCanAccept();
      const password_hash = sha512Crypt(body.password);
      return service.submitCreate({ username: body.username, password: body.password, password_hash }, key ? { key } : undefined);
    });
  };

  app.post(
    '/create',
    {
      schema: {
        summary: 'Launch one instance and wait for it',
        headers: IdempotencyHeaders,
        body: CreateBody,
        response: { 200: OperationResult, 400: ErrorBody, 409: ErrorBody, 502: OperationResult, 503: ErrorBody, 504: OperationResult },
      },
    },
    async (request, reply) => {
      const { task: queuedTask } = createTask(request.body, request.headers['idempotency-key']);
      const task = (await service.waitFor(queuedTask.id, syncWait * 1000)) ?? queuedTask;
      if (!TERMINAL.has(task.status)) {
        return reply.code(504).send({ ip: null, status: task.status, task_id: task.id, error: stillRunning(task, syncWait) });
      }
      if (task.status === 'succeeded') {
        return reply.code(200).send({ ip: task.ip, status: task.instance_state ?? 'running', task_id: task.id, instance_id: task.instance_id });
      }
      return reply.code(502).send({ ip: null, status: task.status, task_id: task.id, error: task.error ?? 'the task failed' });
    },
  );

  app.post(
    '/create-async',
    {
      schema: {
        summary: 'Queue one launch',
        headers: IdempotencyHeaders,
        body: CreateBody,
        response: { 202: Queued, 400: ErrorBody, 409: ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => queued(reply, createTask(request.body, request.headers['idempotency-key']), 'create task queued'),
  );

  app.get(
    '/status/:id',
    { schema: { summary: 'One task', params: TaskIdParams, response: { 200: TaskStatus, 400: ErrorBody, 404: ErrorBody } } },
    async (request) => {
      const task = service.get(request.params.id.toLowerCase());
      if (!task) throw new HttpError(404, 'task not found');
      return statusDocument(task);
    },
  );

  app.get(
    '/delete/:ip',
    {
      schema: {
        summary: 'Terminate the managed instance with this public IP, and wait',
        params: IpParams,
        response: { 200: OperationResult, 400: ErrorBody, 404: OperationResult, 502: OperationResult, 503: ErrorBody, 504: OperationResult },
      },
    },
    async (request, reply) => {
      const { ip } = request.params;
      const { task: queuedTask } = submitOrThrow(() => service.submitDelete(ip));
      const task = (await service.waitFor(queuedTask.id, syncWait * 1000)) ?? queuedTask;
      if (!TERMINAL.has(task.status)) {
        return reply.code(504).send({ ip, status: task.status, task_id: task.id, error: stillRunning(task, syncWait) });
      }
      if (task.status === 'succeeded') {
        return reply.code(200).send({ ip, status: 'terminated', task_id: task.id, instance_id: task.instance_id });
      }
      if (task.instance_state === 'not_found') {
        return reply.code(404).send({ ip, status: 'not_found', task_id: task.id, error: task.error ?? `no managed instance has public IP ${ip}` });
      }
      return reply.code(502).send({ ip, status: task.status, task_id: task.id, error: task.error ?? 'the task failed' });
    },
  );

  app.get(
    '/delete-async/:ip',
    { schema: { summary: 'Queue a termination', params: IpParams, response: { 202: Queued, 400: ErrorBody, 503: ErrorBody } } },
    async (request, reply) => queued(reply, submitOrThrow(() => service.submitDelete(request.params.ip)), 'delete task queued'),
  );
};

export default compatRoutes;
