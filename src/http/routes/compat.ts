// The five routes of the original Flask service, with its paths and field
// names (docs/API.md). Sync routes queue a task like the async ones and wait
// for it; the task goes on if the client leaves.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
// `config.changesState` (the GET deletes are refused from another site) from the browser guard.
import type {} from '../browser-guard.js';
import { taskView } from '../../tasks/model.js';
import type { Submitted, TaskService } from '../../tasks/service.js';
import {
  described,
  CreateBody,
  IdempotencyHeaders,
  INVALID,
  IpParams,
  KEY_REUSED,
  NO_SUCH_TASK,
  NOT_ACCEPTED,
  ONE_TASK,
  OperationResult,
  Queued,
  TaskIdParams,
  TaskStatus,
} from '../schemas.js';
import { acceptedHeaders, createRequest, findTask, stillRunning, waitedStatus, waitForEnd } from '../tasks-http.js';

export interface CompatOptions {
  tasks: TaskService;
  /** Seconds a sync route waits before answering 504. */
  syncWait: number;
}

/** The tag of these routes in /openapi.json. */
export const COMPAT_TAG = { name: 'compat', description: 'The five routes of the original Flask service: same paths, same fields' };
const tags = [COMPAT_TAG.name];

/** The refusals every route that queues a task may described, besides its own. */
const REFUSED = { 400: INVALID, 503: NOT_ACCEPTED } as const;
const QUEUED = described('Accepted: the task is stored and queued; the Location header names its /status URL', Queued);
const FAILED = described('The playbook failed: `error` says why, /status/<task_id> keeps the detail', OperationResult);
const STILL_RUNNING = described('Still running after EC2_API_SYNC_WAIT: the task goes on; follow /status/<task_id>', OperationResult);

function queued(reply: FastifyReply, submitted: Submitted, message: string) {
  acceptedHeaders(reply, submitted, `/status/${submitted.task.id}`);
  return reply.code(202).send({ task_id: submitted.task.id, message });
}

const compatRoutes: FastifyPluginAsyncTypebox<CompatOptions> = async (app, { tasks, syncWait }) => {
  app.post(
    '/create',
    {
      schema: {
        operationId: 'createAndWait',
        summary: 'Launch one instance and wait for it',
        tags,
        headers: IdempotencyHeaders,
        body: CreateBody,
        response: {
          200: described('Launched and running', OperationResult),
          ...REFUSED,
          409: KEY_REUSED,
          502: FAILED,
          504: STILL_RUNNING,
        },
      },
    },
    async (request, reply) => {
      const task = await waitForEnd(tasks, await tasks.createTask(...createRequest(request)), syncWait);
      const code = waitedStatus(task, 200);
      if (code === 200) return reply.code(200).send({ ip: task.ip, status: task.instance_state ?? 'running', task_id: task.id, instance_id: task.instance_id });
      const error = code === 504 ? stillRunning(task, syncWait) : (task.error ?? 'the task failed');
      // A create's task is never "not found": it ended failed or canceled (502), or goes on (504).
      return reply.code(code === 504 ? 504 : 502).send({ ip: null, status: task.status, task_id: task.id, error });
    },
  );

  app.post(
    '/create-async',
    {
      schema: {
        operationId: 'createAsync',
        summary: 'Queue one launch',
        tags,
        headers: IdempotencyHeaders,
        body: CreateBody,
        response: { 202: QUEUED, ...REFUSED, 409: KEY_REUSED },
      },
    },
    async (request, reply) => queued(reply, await tasks.createTask(...createRequest(request)), 'create task queued'),
  );

  app.get(
    '/status/:id',
    {
      schema: {
        operationId: 'getStatus',
        summary: 'One task',
        tags,
        ...ONE_TASK,
      },
    },
    async (request) => taskView(await findTask(tasks, request.params.id, request.owner)),
  );

  app.get(
    '/delete/:ip',
    {
      config: { changesState: true },
      schema: {
        operationId: 'deleteAndWait',
        summary: 'Terminate the managed instance with this public IP, and wait',
        tags,
        params: IpParams,
        response: {
          200: described('Terminated', OperationResult),
          ...REFUSED,
          404: described('No instance launched by this service has that public IP', OperationResult),
          502: FAILED,
          504: STILL_RUNNING,
        },
      },
    },
    async (request, reply) => {
      const { ip } = request.params;
      const task = await waitForEnd(tasks, await tasks.deleteTask(ip, request.owner), syncWait);
      const code = waitedStatus(task, 200);
      if (code === 200) return reply.code(200).send({ ip, status: 'terminated', task_id: task.id, instance_id: task.instance_id });
      if (code === 404) {
        return reply.code(404).send({ ip, status: 'not_found', task_id: task.id, error: task.error ?? `no managed instance has public IP ${ip}` });
      }
      const error = code === 504 ? stillRunning(task, syncWait) : (task.error ?? 'the task failed');
      return reply.code(code).send({ ip, status: task.status, task_id: task.id, error });
    },
  );

  app.get(
    '/delete-async/:ip',
    {
      config: { changesState: true },
      schema: {
        operationId: 'deleteAsync',
        summary: 'Queue a termination',
        tags,
        params: IpParams,
        response: { 202: QUEUED, ...REFUSED },
      },
    },
    async (request, reply) => queued(reply, await tasks.deleteTask(request.params.ip, request.owner), 'delete task queued'),
  );
};

export default compatRoutes;
