// Schemas of the routes beyond the original five: task listing, logs,
// events, cancel, and the instance resources.
import { Type } from '@sinclair/typebox';
import { IPV4_PATTERN, TaskStatus, UUID_PATTERN } from './schemas.js';

const Literals = <T extends string>(values: readonly T[]) => Type.Union(values.map((value) => Type.Literal(value)));

export const TaskListQuery = Type.Object(
  {
    status: Type.Optional(Literals(['queued', 'running', 'succeeded', 'failed', 'canceled'] as const)),
    action: Type.Optional(Literals(['create', 'delete'] as const)),
    ip: Type.Optional(Type.String({ pattern: IPV4_PATTERN, maxLength: 15, description: 'public IP the task launched or deleted' })),
    created_after: Type.Optional(Type.String({ format: 'date-time', description: 'ISO-8601 time, exclusive' })),
    created_before: Type.Optional(Type.String({ format: 'date-time', description: 'ISO-8601 time, exclusive' })),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,3}$', description: 'page size, 1–500 (default 50)' })),
    cursor: Type.Optional(Type.String({ pattern: UUID_PATTERN, description: 'next_cursor of the previous page' })),
  },
  { additionalProperties: false },
);

export const TaskList = Type.Object({
  tasks: Type.Array(TaskStatus),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'pass as ?cursor= for the next (older) page; null on the last' }),
  last_event_id: Type.Integer({ description: 'The newest event when this list was read: follow /events?after=<this> to see every change since' }),
});

export const FeedQuery = Type.Object(
  { after: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'replay the events after this id (as Last-Event-ID does)' })) },
  { additionalProperties: false },
);

export const LogQuery = Type.Object(
  { offset: Type.Optional(Type.String({ pattern: '^[0-9]{1,9}$', description: 'characters to skip: read only what is new' })) },
  { additionalProperties: false },
);

export const EventsHeaders = Type.Object({
  'last-event-id': Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
});

export const WaitQuery = Type.Object(
  { wait: Type.Optional(Literals(['true', 'false'] as const)) },
  { additionalProperties: false },
);

export const Instance = Type.Object({
  instance_id: Type.String(),
  public_ip: Type.Union([Type.String(), Type.Null()]),
  state: Type.String(),
  launch_time: Type.Union([Type.String(), Type.Null()]),
  task_id: Type.Union([Type.String(), Type.Null()], { description: 'the create task that launched it (its TaskId tag)' }),
  name: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  instance_type: Type.Optional(Type.Union([Type.String(), Type.Null()])),
});

export const InstanceList = Type.Object({ instances: Type.Array(Instance) });
