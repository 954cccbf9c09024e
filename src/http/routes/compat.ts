// The five routes of the original Flask service, with its paths and field
// names (../shared/API.md). Sync routes queue a task like the async ones and
// wait for it; the task goes on if the client leaves.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import type { Submitted, TaskService } from '../../tasks/service.js';
import { TERMINAL } from '../../tasks/types.js';
import { HttpError } from '../errors.js';
import type { PasswordHasher } from '../password.js';
import { statusDocument, stillRunning, submitCreate, submitDelete } from '../tasks-http.js';
import {
  CreateBody,
  ErrorBody,
  IdempotencyHeaders,
  IpParams,
  OperationResult,
  Queued,
  TaskIdParams,
  TaskStatus,
} from '../schemas.js';

export interface CompatOptions {
  service: TaskService;
  hasher: PasswordHasher;
  /** Seconds a sync route waits before answering 504. */
  syncWait: number;
}

function queued(reply: FastifyReply, submitted: Submitted, message: string) {
  reply.header('Location', `/status/${submitted.task.id}`);
  if (submitted.replayed) reply.header('Idempotent-Replayed', 'true');
  return reply.code(202).send({ task_id: submitted.task.id, message });
}

const compatRoutes: FastifyPluginAsyncTypebox<CompatOptions> = async (app, { service, hasher, syncWait }) => {
  const createTask = (body: CreateBody, key: string | undefined) => submitCreate(service, hasher, body, key);

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
      const { task: queuedTask } = await createTask(request.body, request.headers['idempotency-key']);
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
    async (request, reply) => queued(reply, await createTask(request.body, request.headers['idempotency-key']), 'create task queued'),
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
      const { task: queuedTask } = await submitDelete(service, ip);
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
    async (request, reply) => queued(reply, await submitDelete(service, request.params.ip), 'delete task queued'),
  );
};

export default compatRoutes;
