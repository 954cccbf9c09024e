// Resource-style routes for new clients, beside the compatibility ones:
// the same tasks underneath, with REST verbs and the task document as answer.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { ListError, ListStopped } from '../../ansible/instances.js';
import { taskView } from '../../tasks/model.js';
import { shuttingDown } from '../../tasks/refusal.js';
import type { Submitted, TaskService } from '../../tasks/service.js';
import { HttpError } from '../errors.js';
import { InstanceList, WaitQuery } from '../resource-schemas.js';
import { CreateBody, ErrorBody, ExtendBody, IdempotencyHeaders, InstanceLifetime, IpParams, TaskStatus } from '../schemas.js';
import { acceptedHeaders, createRequest, waitedStatus, waitForEnd } from '../tasks-http.js';

export interface InstanceRoutesOptions {
  tasks: TaskService;
  syncWait: number;
}

const instanceRoutes: FastifyPluginAsyncTypebox<InstanceRoutesOptions> = async (app, { tasks, syncWait }) => {
  /** 202 with the task now, or (?wait=true) the task once it has ended, with the code of how it ended. */
  const answer = async (reply: FastifyReply, submitted: Submitted, wait: boolean, success: number) => {
    acceptedHeaders(reply, submitted, `/tasks/${submitted.task.id}`);
    if (!wait) return reply.code(202).send(taskView(submitted.task));
    const task = await waitForEnd(tasks, submitted, syncWait);
    return reply.code(waitedStatus(task, success)).send(taskView(task));
  };

  app.get(
    '/instances',
    {
      schema: {
        operationId: 'listInstances',
        summary: 'The instances this service manages, read from EC2',
        description:
          'Every non-terminated instance tagged ManagedBy: ec2-api that your token launched (an admin token: all of them), ' +
          'with the task that created it, its owner and its expiry. Read through a playbook ' +
          '(about 1.5 s); callers at the same time share one read, and a read up to 3 s old is reused.',
        response: { 200: InstanceList, 502: ErrorBody, 503: ErrorBody },
      },
    },
    async (request) => {
      try {
        return { instances: await tasks.instances(request.owner) };
      } catch (error) {
        if (error instanceof ListError) throw new HttpError(502, error.message);
        // A shutdown refusal like the engine's own: REFUSAL_STATUS gives its 503 and Retry-After.
        if (error instanceof ListStopped) throw shuttingDown();
        throw error;
      }
    },
  );

  app.post(
    '/instances',
    {
      schema: {
        operationId: 'createInstance',
        summary: 'Launch an instance (queue a create task)',
        description: '202 with the task; with `?wait=true`, 201 once it runs, 502 if it failed, 504 if still going after EC2_API_SYNC_WAIT.',
        headers: IdempotencyHeaders,
        querystring: WaitQuery,
        body: CreateBody,
        response: { 201: TaskStatus, 202: TaskStatus, 400: ErrorBody, 409: ErrorBody, 502: TaskStatus, 503: ErrorBody, 504: TaskStatus },
      },
    },
    async (request, reply) => answer(reply, await tasks.createTask(...createRequest(request)), request.query.wait === 'true', 201),
  );

  app.delete(
    '/instances/:ip',
    {
      schema: {
        operationId: 'deleteInstance',
        summary: 'Terminate the managed instance with this public IP (queue a delete task)',
        description: '202 with the task; with `?wait=true`, 200 once terminated, 404 when no managed instance has that IP, 502, or 504.',
        params: IpParams,
        querystring: WaitQuery,
        response: { 200: TaskStatus, 202: TaskStatus, 400: ErrorBody, 404: TaskStatus, 502: TaskStatus, 503: ErrorBody, 504: TaskStatus },
      },
    },
    async (request, reply) => answer(reply, await tasks.deleteTask(request.params.ip, request.owner), request.query.wait === 'true', 200),
  );

  app.patch(
    '/instances/:ip',
    {
      schema: {
        operationId: 'extendInstance',
        summary: "Move the instance's expiry to now + ttl",
        description:
          'The service terminates the instance `ttl` seconds from now (a delete task with reason "expired"), whatever its ' +
          'expiry was, or if it had none. 404 when no live managed instance of yours has that IP; 409 while a delete of it ' +
          'is queued or running (cancel that task first).',
        params: IpParams,
        body: ExtendBody,
        response: { 200: InstanceLifetime, 400: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (request) => tasks.extend(request.params.ip, request.body.ttl, request.owner),
  );
};

export default instanceRoutes;
