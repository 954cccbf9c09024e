// Seeing and steering tasks: list, one task, its log, its live events
// (Server-Sent Events), and cancel.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { TaskEvent } from '../../tasks/events.js';
import type { TaskService } from '../../tasks/service.js';
import { TERMINAL } from '../../tasks/types.js';
import { HttpError } from '../errors.js';
import { EventsHeaders, LogQuery, TaskList, TaskListQuery } from '../resource-schemas.js';
import { ErrorBody, TaskIdParams, TaskStatus } from '../schemas.js';
import { statusDocument, toHttpError } from '../tasks-http.js';

export interface TaskRoutesOptions {
  service: TaskService;
  /** How long POST /tasks/<id>/cancel waits for a running task to stop and be cleaned up. */
  cancelWait: number;
}

const HEARTBEAT_MS = 15_000;

const taskRoutes: FastifyPluginAsyncTypebox<TaskRoutesOptions> = async (app, { service, cancelWait }) => {
  const find = (id: string) => {
    const task = service.get(id.toLowerCase());
    if (!task) throw new HttpError(404, 'task not found');
    return task;
  };

  app.get(
    '/tasks',
    {
      schema: {
        summary: 'List tasks, newest first',
        description: 'Filters combine; pages of `limit` tasks, the next one via `?cursor=<next_cursor>`.',
        querystring: TaskListQuery,
        response: { 200: TaskList, 400: ErrorBody },
      },
    },
    async (request) => {
      const { limit: rawLimit, cursor, created_after, created_before, ...filters } = request.query;
      const limit = rawLimit === undefined ? 50 : Number(rawLimit);
      if (limit < 1 || limit > 500) throw new HttpError(400, 'limit must be from 1 to 500', { field: 'limit' });
      const tasks = service.list({
        ...filters,
        // Stored times are ISO-8601 UTC with milliseconds: compare like with like.
        created_after: created_after && new Date(created_after).toISOString(),
        created_before: created_before && new Date(created_before).toISOString(),
        before_id: cursor?.toLowerCase(),
        limit,
      });
      return { tasks: tasks.map(statusDocument), next_cursor: tasks.length === limit ? tasks.at(-1)!.id : null };
    },
  );

  app.get(
    '/tasks/:id',
    { schema: { summary: 'One task (the same document as /status/<id>)', params: TaskIdParams, response: { 200: TaskStatus, 400: ErrorBody, 404: ErrorBody } } },
    async (request) => statusDocument(find(request.params.id)),
  );

  app.get(
    '/tasks/:id/log',
    {
      schema: {
        summary: "The task's playbook output as text",
        description:
          'Live while the task runs. `X-Log-Length` is the length so far; `?offset=<that>` returns only what came after. ' +
          '`X-Log-Complete: true` once the task has ended. A batch of tasks shares one playbook run, and so its output.',
        params: TaskIdParams,
        querystring: LogQuery,
        response: { 200: { content: { 'text/plain': { schema: { type: 'string' } } } }, 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      const task = find(request.params.id);
      const log = service.getLog(task.id) ?? '';
      const offset = Math.min(Number(request.query.offset ?? 0), log.length);
      return reply
        .type('text/plain; charset=utf-8')
        .header('X-Log-Length', String(log.length))
        .header('X-Log-Complete', String(TERMINAL.has(task.status)))
        .send(log.slice(offset));
    },
  );

  app.get(
    '/tasks/:id/events',
    {
      schema: {
        summary: 'Live events of a task (Server-Sent Events)',
        description:
          'Past events first, then live ones: `status` (queued/running/…), `step_start` and `step_end` (playbook steps with ' +
          'ok/changed/failed and timing); then one `end` event holding the final task document, and the stream closes. ' +
          'Reconnect with `Last-Event-ID` to resume after the last event seen.',
        params: TaskIdParams,
        headers: EventsHeaders,
        response: { 200: { content: { 'text/event-stream': { schema: { type: 'string' } } } }, 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      const task = find(request.params.id);
      const after = Number(request.headers['last-event-id'] ?? 0);

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no', // proxies must not hold events back
        'x-request-id': String(request.id),
      });

      let sent = after;
      let ended = false;
      const pending: TaskEvent[] = [];
      let replaying = true;
      const write = (event: TaskEvent) => {
        if (ended || event.id <= sent) return;
        sent = event.id;
        res.write(`id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify({ ...event.data, at: event.at })}\n\n`);
        if (event.type === 'status' && TERMINAL.has(event.data.status as never)) end();
      };
      const end = () => {
        if (ended) return;
        ended = true;
        const final = service.get(task.id);
        if (final) res.write(`event: end\ndata: ${JSON.stringify(statusDocument(final))}\n\n`);
        cleanup();
        res.end();
      };
      // Subscribe before reading the past, so nothing falls in between.
      const unsubscribe = service.taskEvents.subscribe(task.id, (event) => (replaying ? pending.push(event) : write(event)));
      const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
      const cleanup = () => {
        unsubscribe();
        clearInterval(heartbeat);
      };
      request.raw.on('close', () => {
        ended = true;
        cleanup();
      });

      for (const event of service.eventsSince(task.id, after)) write(event);
      replaying = false;
      for (const event of pending) write(event);
      if (TERMINAL.has(service.get(task.id)!.status)) end();
    },
  );

  app.post(
    '/tasks/:id/cancel',
    {
      schema: {
        summary: 'Cancel a task',
        description:
          'A queued task becomes `canceled` and never runs. A running one has its playbook stopped; a create then has the ' +
          'instance it launched (if any) terminated, so nothing is left running. 200 with the canceled task; 202 when the ' +
          'cleanup is still going (follow /tasks/<id>); 409 for a task that has already ended.',
        params: TaskIdParams,
        response: { 200: TaskStatus, 202: TaskStatus, 400: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (request, reply) => {
      let task;
      try {
        task = await service.cancel(request.params.id.toLowerCase(), cancelWait * 1000);
      } catch (error) {
        throw toHttpError(error);
      }
      return reply.code(TERMINAL.has(task.status) ? 200 : 202).send(statusDocument(task));
    },
  );
};

export default taskRoutes;
