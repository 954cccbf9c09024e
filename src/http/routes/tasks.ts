// Seeing and steering tasks: list, one task, its log, its live events
// (Server-Sent Events), and cancel.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { EMPTY_OUTPUT, HEAD_LIMIT, outputFrom, TAIL_LIMIT } from '../../ansible/output.js';
import type { TaskEvent } from '../../tasks/events.js';
import { canSee, TERMINAL, taskView } from '../../tasks/model.js';
import type { TaskService } from '../../tasks/service.js';
import { HttpError } from '../errors.js';
import { EventsHeaders, FeedQuery, LogQuery, TaskList, TaskListQuery } from '../resource-schemas.js';
import { MAX_BUFFERED, MAX_STREAMS, type EventStreams } from '../sse.js';
import { described, ErrorBody, INVALID, NO_SUCH_TASK, ONE_TASK, TaskIdParams, TaskStatus } from '../schemas.js';
import { findTask } from '../tasks-http.js';

export interface TaskRoutesOptions {
  tasks: TaskService;
  streams: EventStreams;
  /** Seconds POST /tasks/<id>/cancel waits for a running task to stop and be cleaned up (EC2_API_CANCEL_WAIT). */
  cancelWait: number;
}

/** The tag of these routes in /openapi.json. */
export const TASKS_TAG = { name: 'tasks', description: 'Tasks: list, follow, cancel, read their playbook log' };
const tags = [TASKS_TAG.name];

/** A size in bytes as the documentation says it: 64 KiB, 1 MiB. */
const size = (bytes: number) => (bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`);

const STREAM_REFUSED = described(
  `${MAX_STREAMS} event streams are open already, or the service is shutting down: reconnect after Retry-After`,
  ErrorBody,
);
const eventStream = (description: string) => ({ description, content: { 'text/event-stream': { schema: { type: 'string' } } } });

/** A date-time the schema let through, as stored times are written; one Date cannot hold (a leap second) is a 400. */
function isoTime(value: string, field: string): string {
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) throw new HttpError(400, `${field} is not a time this service can compare: use ISO-8601 such as 2026-11-27T09:33:38Z`, { field });
  return time.toISOString();
}

/** Events read from the database at a time when a client catches up. */
const REPLAY_PAGE = 500;

const taskRoutes: FastifyPluginAsyncTypebox<TaskRoutesOptions> = async (app, { tasks: service, streams, cancelWait }) => {
  app.get(
    '/tasks',
    {
      schema: {
        operationId: 'listTasks',
        summary: 'List tasks, newest first',
        description: 'Filters combine; pages of `limit` tasks, the next one via `?cursor=<next_cursor>`.',
        tags,
        querystring: TaskListQuery,
        response: { 200: described('A page of tasks, newest first', TaskList), 400: INVALID },
      },
    },
    async (request) => {
      const { limit: rawLimit, cursor, created_after, created_before, ...filters } = request.query;
      const limit = rawLimit === undefined ? 50 : Number(rawLimit);
      if (limit < 1 || limit > 500) throw new HttpError(400, 'limit must be from 1 to 500', { field: 'limit' });
      // Read before the list (reads are async): following /events after it may repeat a change the list shows, never miss one.
      const lastEventId = await service.lastEventId();
      const found = await service.list({
        ...filters,
        // Stored times are ISO-8601 UTC with milliseconds: compare like with like.
        created_after: created_after && isoTime(created_after, 'created_after'),
        created_before: created_before && isoTime(created_before, 'created_before'),
        before_id: cursor?.toLowerCase(),
        // A token that is not an admin lists its own tasks only.
        created_by: request.owner.admin ? undefined : request.owner.name,
        limit,
      });
      return {
        tasks: found.map(taskView),
        next_cursor: found.length === limit ? found.at(-1)!.id : null,
        last_event_id: lastEventId,
      };
    },
  );

  app.get(
    '/tasks/:id',
    {
      schema: {
        operationId: 'getTask',
        summary: 'One task (the same document as /status/<id>)',
        tags,
        ...ONE_TASK,
      },
    },
    async (request) => taskView(await findTask(service, request.params.id, request.owner)),
  );

  app.get(
    '/tasks/:id/log',
    {
      schema: {
        operationId: 'getTaskLog',
        summary: "The task's playbook output as text",
        description:
          'Live while the task runs. `X-Log-Length` is how much the playbook has written so far; `?offset=<that>` returns ' +
          'only what came after. `X-Log-Complete: true` once the task has ended. A batch of tasks shares one playbook run, ' +
          `and so its output. The first ${size(HEAD_LIMIT)} and the last ${size(TAIL_LIMIT)} are kept; a line in between ` +
          'says how much was left out.',
        tags,
        params: TaskIdParams,
        querystring: LogQuery,
        response: {
          200: { description: 'The output from `offset` on', content: { 'text/plain': { schema: { type: 'string' } } } },
          400: INVALID,
          404: NO_SUCH_TASK,
        },
      },
    },
    async (request, reply) => {
      const task = await findTask(service, request.params.id, request.owner);
      const { log, complete } = (await service.output(task.id)) ?? { log: EMPTY_OUTPUT, complete: false };
      const offset = Math.min(Number(request.query.offset ?? 0), log.size);
      return reply
        .type('text/plain; charset=utf-8')
        .header('X-Log-Length', String(log.size))
        .header('X-Log-Complete', String(complete))
        .send(outputFrom(log, offset));
    },
  );

  /** An event as both feeds send it: the task it is about, what happened, and when. */
  const message = (event: TaskEvent) => ({ id: event.id, event: event.type, data: { task_id: event.task_id, ...event.data, at: event.at } });

  app.get(
    '/tasks/:id/events',
    {
      schema: {
        operationId: 'watchTask',
        summary: 'Live events of one task (Server-Sent Events)',
        description:
          'Without `Last-Event-ID`, the task\'s history first (it starts with a `status` event holding the task), then live ' +
          'events: `status` (the whole task document, at every status change), `step_start` and `step_end` (playbook steps ' +
          'with ok/changed/failed and timing). Once the task has ended, one `end` event holding the final task document, and ' +
          'the stream closes. With `Last-Event-ID`, only what came after that event. A `stopping` event means the service is ' +
          'shutting down: reconnect with `Last-Event-ID`.',
        tags,
        params: TaskIdParams,
        headers: EventsHeaders,
        response: { 200: eventStream('The task\'s events, until it ends'), 400: INVALID, 404: NO_SUCH_TASK, 503: STREAM_REFUSED },
      },
    },
    async (request, reply) => {
      const task = await findTask(service, request.params.id, request.owner);
      const lastSeen = request.headers['last-event-id'];
      let sent = lastSeen === undefined ? 0 : Number(lastSeen);
      const stream = streams.start(request, reply);
      if (!stream) return;

      // Once, however many times the end is seen (the read of the task is async: its status event may come meanwhile).
      let ending = false;
      const end = () => {
        if (ending) return;
        ending = true;
        void service.get(task.id).then(
          (final) => {
            if (final && !stream.closed) stream.send({ event: 'end', data: taskView(final) });
            stream.end();
          },
          () => stream.end(),
        );
      };
      const write = (event: TaskEvent) => {
        if (stream.closed || event.id <= sent) return;
        sent = event.id;
        stream.send(message(event));
        if (event.type === 'status' && TERMINAL.has(event.data.status as never)) end();
      };
      // Subscribed before the history is read (async): live events wait in `early` until the history is sent,
      // so nothing falls in between and nothing goes out of order (write skips what was sent already).
      let early: TaskEvent[] | null = [];
      stream.onClose(service.watch(task.id, (event) => (early ? early.push(event) : write(event))));
      const history = await service.eventsSince(task.id, sent);
      if (lastSeen === undefined && !history.some((event) => event.type === 'status')) {
        // A task from before status events were recorded: say where it stands.
        stream.send({ event: 'status', data: { ...taskView(task), at: new Date().toISOString() } });
      }
      for (const event of history) write(event);
      for (const event of early) write(event);
      early = null;
      const now = await service.get(task.id);
      if (!stream.closed && now && TERMINAL.has(now.status)) end();
    },
  );

  app.get(
    '/events',
    {
      schema: {
        operationId: 'watchAllTasks',
        summary: 'Live events of every task (Server-Sent Events)',
        description:
          'The same events as /tasks/<id>/events, for all tasks your token may see (an admin: every task), each with its `task_id`: `status` (the whole task document ' +
          'at every status change, `queued` included, so new tasks appear), `step_start`, `step_end`. The stream first sends ' +
          '`ready` with `{"after": N}`: the events that follow are those after event N. Without `Last-Event-ID` (or ' +
          '`?after=`) it starts now; with one, it first replays every event after it. `GET /tasks` answers with ' +
          '`last_event_id`: list first, then follow `/events?after=<last_event_id>` to miss nothing. A client that falls ' +
          `more than ${size(MAX_BUFFERED)} behind is disconnected and resumes with \`Last-Event-ID\`; \`stopping\` means the ` +
          'service is shutting down.',
        tags,
        headers: EventsHeaders,
        querystring: FeedQuery,
        response: { 200: eventStream('Every task\'s events, as they happen'), 400: INVALID, 503: STREAM_REFUSED },
      },
    },
    async (request, reply) => {
      const given = request.headers['last-event-id'] ?? request.query.after;
      let early: TaskEvent[] | null = [];
      // Subscribed before anything is read (reads are async): live events wait in `early` until the replay is done.
      const unwatch = service.watch(null, (event) => (early ? early.push(event) : write(event)));
      let sent = given === undefined ? await service.lastEventId() : Number(given);
      const stream = streams.start(request, reply);
      if (!stream) return unwatch();
      stream.onClose(unwatch);
      stream.send({ event: 'ready', data: { after: sent } });

      // A token that is not an admin is sent its own tasks' events only (an event's task is looked up once).
      const { owner } = request;
      const visible = new Map<string, boolean>();
      const mine = async (taskId: string) => {
        let seen = visible.get(taskId);
        if (seen === undefined) {
          if (visible.size >= 10_000) visible.clear(); // a stream may outlive many tasks: keep the memo bounded
          visible.set(taskId, (seen = canSee(owner, (await service.get(taskId))?.created_by ?? '')));
        }
        return seen;
      };
      // The look-up of an event's owner is async: events go out through one chain, so never out of order.
      let sending = Promise.resolve();
      const write = (event: TaskEvent) => {
        if (stream.closed || event.id <= sent) return;
        sent = event.id;
        if (owner.admin) return stream.send(message(event));
        sending = sending
          .then(async () => {
            if ((await mine(event.task_id)) && !stream.closed) stream.send(message(event));
          })
          .catch((err: unknown) => request.log.warn({ err }, 'events: cannot read the owner of a task'));
      };
      // Replay in pages, waiting for the client to read each one.
      for (;;) {
        const page = await service.eventsAfter(sent, REPLAY_PAGE);
        for (const event of page) write(event);
        if (page.length < REPLAY_PAGE || stream.closed) break;
        await stream.drained();
      }
      if (stream.closed) return;
      for (const event of early) write(event);
      early = null;
    },
  );

  app.post(
    '/tasks/:id/cancel',
    {
      schema: {
        operationId: 'cancelTask',
        summary: 'Cancel a task',
        description:
          'A queued task becomes `canceled` and never runs. A running create has its playbook stopped, then the ' +
          'instance it launched (if any) terminated, so nothing is left running. The answer waits up to ' +
          `${cancelWait} s (EC2_API_CANCEL_WAIT) for that: 200 with the canceled task; 202 when the clean-up is still ` +
          'going (follow /tasks/<id>); 409 for a task that has already ended, or a delete already running (its ' +
          '`TerminateInstances` may have gone out).',
        tags,
        params: TaskIdParams,
        response: {
          200: described('Canceled: the task has ended', TaskStatus),
          202: described(`Still being stopped or cleaned up after ${cancelWait} s: follow /tasks/<task_id>`, TaskStatus),
          400: INVALID,
          404: NO_SUCH_TASK,
          409: described('The task cannot be canceled: `error` says why (it has already ended, or is a running delete)', ErrorBody),
        },
      },
    },
    async (request, reply) => {
      const task = await service.cancel((await findTask(service, request.params.id, request.owner)).id, cancelWait * 1000);
      return reply.code(TERMINAL.has(task.status) ? 200 : 202).send(taskView(task));
    },
  );
};

export default taskRoutes;
