// Resource-style routes for new clients, beside the compatibility ones:
// the same tasks underneath, with REST verbs and the task document as answer.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { listManagedInstances, ListError, type ListOptions } from '../../ansible/instances.js';
import type { Submitted, TaskService } from '../../tasks/service.js';
import { TERMINAL, type Task } from '../../tasks/types.js';
import { HttpError } from '../errors.js';
import type { PasswordHasher } from '../password.js';
import { InstanceList, WaitQuery } from '../resource-schemas.js';
import { CreateBody, ErrorBody, IdempotencyHeaders, IpParams, TaskStatus } from '../schemas.js';
import { statusDocument, submitCreate, submitDelete } from '../tasks-http.js';

export interface InstanceRoutesOptions {
  service: TaskService;
  hasher: PasswordHasher;
  syncWait: number;
  list: ListOptions;
}

const instanceRoutes: FastifyPluginAsyncTypebox<InstanceRoutesOptions> = async (app, { service, hasher, syncWait, list }) => {
  /** 202 with the task now, or (?wait=true) the task once it has ended. */
  const answer = async (reply: FastifyReply, submitted: Submitted, wait: boolean, done: (task: Task) => number) => {
    reply.header('Location', `/tasks/${submitted.task.id}`);
    if (submitted.replayed) reply.header('Idempotent-Replayed', 'true');
    if (!wait) return reply.code(202).send(statusDocument(submitted.task));
    const task = (await service.waitFor(submitted.task.id, syncWait * 1000)) ?? submitted.task;
    return reply.code(TERMINAL.has(task.status) ? done(task) : 504).send(statusDocument(task));
  };

  app.get(
    '/instances',
    {
      schema: {
        summary: 'The instances this service manages, read from EC2',
        description: 'Every non-terminated instance tagged ManagedBy: ec2-api, with the task that created it.',
        response: { 200: InstanceList, 502: ErrorBody },
      },
    },
    async () => {
      try {
        return { instances: await listManagedInstances(list) };
      } catch (error) {
        if (error instanceof ListError) throw new HttpError(502, error.message);
        throw error;
      }
    },
  );

  app.post(
    '/instances',
    {
      schema: {
        summary: 'Launch an instance (queue a create task)',
        description: '202 with the task; with `?wait=true`, 201 once it runs, 502 if it failed, 504 if still going after EC2_API_SYNC_WAIT.',
        headers: IdempotencyHeaders,
        querystring: WaitQuery,
        body: CreateBody,
        response: { 201: TaskStatus, 202: TaskStatus, 400: ErrorBody, 409: ErrorBody, 502: TaskStatus, 503: ErrorBody, 504: TaskStatus },
      },
    },
    async (request, reply) =>
      answer(reply, await submitCreate(service, hasher, request.body, request.headers['idempotency-key']), request.query.wait === 'true', (task) =>
        task.status === 'succeeded' ? 201 : 502,
      ),
  );

  app.delete(
    '/instances/:ip',
    {
      schema: {
        summary: 'Terminate the managed instance with this public IP (queue a delete task)',
        description: '202 with the task; with `?wait=true`, 200 once terminated, 404 when no managed instance has that IP, 502, or 504.',
        params: IpParams,
        querystring: WaitQuery,
        response: { 200: TaskStatus, 202: TaskStatus, 400: ErrorBody, 404: TaskStatus, 502: TaskStatus, 503: ErrorBody, 504: TaskStatus },
      },
    },
    async (request, reply) =>
      answer(reply, await submitDelete(service, request.params.ip), request.query.wait === 'true', (task) =>
        task.status === 'succeeded' ? 200 : task.instance_state === 'not_found' ? 404 : 502,
      ),
  );
};

export default instanceRoutes;
