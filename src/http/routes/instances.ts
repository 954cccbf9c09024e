// Resource-style routes for new clients, beside the compatibility ones:
// the same tasks underneath, with REST verbs and the task document as answer.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { ListError, ListStopped } from '../../ansible/instances.js';
import { taskView } from '../../tasks/model.js';
import { shuttingDown } from '../../tasks/refusal.js';
import type { Submitted, TaskService } from '../../tasks/service.js';
import { HttpError } from '../errors.js';
import { LISTING_MAX_AGE_MS } from '../../tasks/listing.js';
import { InstanceList, WaitQuery } from '../resource-schemas.js';
import {
  CreateBody,
  described,
  ErrorBody,
  ExtendBody,
  IdempotencyHeaders,
  INVALID,
  InstanceLifetime,
  IpParams,
  KEY_REUSED,
  NOT_ACCEPTED,
  TaskStatus,
} from '../schemas.js';
import { acceptedHeaders, createRequest, waitedStatus, waitForEnd } from '../tasks-http.js';

export interface InstanceRoutesOptions {
  tasks: TaskService;
  syncWait: number;
}

/** The tag of these routes in /openapi.json. */
export const INSTANCES_TAG = { name: 'instances', description: 'The instances this service launched' };
const tags = [INSTANCES_TAG.name];

/** The answers of a queued task, and with ?wait=true of how it ended, besides the route's success. */
const TASK_ANSWERS = {
  202: described('Accepted: the task is stored and queued; the Location header names its /tasks URL', TaskStatus),
  400: INVALID,
  502: described('With ?wait=true: the task failed or was canceled; `error` says why', TaskStatus),
  503: NOT_ACCEPTED,
  504: described('With ?wait=true: still running after EC2_API_SYNC_WAIT; the task goes on, follow /tasks/<task_id>', TaskStatus),
} as const;

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
          `(about 1.5 s); callers at the same time share one read, and a read up to ${LISTING_MAX_AGE_MS / 1000} s old is reused.`,
        tags,
        response: {
          200: described('The managed instances', InstanceList),
          502: described('Reading EC2 failed: `error` says why', ErrorBody),
          503: described('The service is shutting down: retry after Retry-After', ErrorBody),
        },
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
        tags,
        headers: IdempotencyHeaders,
        querystring: WaitQuery,
        body: CreateBody,
        response: { 201: described('With ?wait=true: launched and running', TaskStatus), ...TASK_ANSWERS, 409: KEY_REUSED },
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
        tags,
        params: IpParams,
        querystring: WaitQuery,
        response: {
          200: described('With ?wait=true: terminated', TaskStatus),
          ...TASK_ANSWERS,
          404: described('With ?wait=true: no instance launched by this service has that public IP', TaskStatus),
        },
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
        tags,
        params: IpParams,
        body: ExtendBody,
        response: {
          200: described('The instance and its new expiry', InstanceLifetime),
          400: INVALID,
          404: described('No live managed instance of yours has that public IP', ErrorBody),
          409: described('A delete of the instance is queued or running: cancel that task first to keep it', ErrorBody),
        },
      },
    },
    async (request) => tasks.extend(request.params.ip, request.body.ttl, request.owner),
  );
};

export default instanceRoutes;
