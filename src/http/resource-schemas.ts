// Schemas of the routes beyond the original five: task listing, logs,
// events, cancel, and the instance resources.
import { Type } from '@sinclair/typebox';
import { TASK_ACTIONS, TASK_STATUSES } from '../tasks/model.js';
import { ANSIBLE_CACHE_SECONDS, EC2_TIMEOUT_MS } from './readiness.js';
import { IPV4_PATTERN, Literals, TaskStatus, UUID_PATTERN } from './schemas.js';

export const TaskListQuery = Type.Object(
  {
    status: Type.Optional(Literals(TASK_STATUSES)),
    action: Type.Optional(Literals(TASK_ACTIONS)),
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
  created_by: Type.Union([Type.String(), Type.Null()], { description: 'the name of the token whose create launched it; null when no task of this service is known for it' }),
  expires_at: Type.Union([Type.String(), Type.Null()], { description: 'when the service terminates it (its ttl); null: never' }),
  name: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  instance_type: Type.Optional(Type.Union([Type.String(), Type.Null()])),
});

export const InstanceList = Type.Object({ instances: Type.Array(Instance) });
// The ops routes: /readyz and /metrics.

const Check = (properties: Record<string, ReturnType<typeof Type.String>>, description: string) =>
  Type.Object(
    {
      ok: Type.Boolean(),
      ...properties,
      error: Type.Optional(Type.String({ description: 'Why the check failed' })),
    },
    { description },
  );

export const Readiness = Type.Object(
  {
    status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
    error: Type.Optional(Type.String({ description: 'Which checks failed, when not ready' })),
    checks: Type.Object({
      database: Check({}, 'The SQLite database answers `SELECT 1`'),
      ansible: Check(
        { version: Type.Optional(Type.String({ description: 'What `ansible-playbook --version` reports' })) },
        `\`ansible-playbook --version\` runs (checked at most once every ${ANSIBLE_CACHE_SECONDS} s)`,
      ),
      ec2: Check(
        { endpoint: Type.String({ description: 'The URL probed: AWS_ENDPOINT_URL, the emulator, or https://ec2.<region>.amazonaws.com/' }) },
        `The EC2 endpoint answers HTTP within ${EC2_TIMEOUT_MS / 1000} s (any status counts)`,
      ),
    }),
  },
  {
    description: 'Whether the service can do its work now',
    examples: [
      {
        status: 'ready',
        checks: {
          database: { ok: true },
          ansible: { ok: true, version: 'core 2.16.3' },
          ec2: { ok: true, endpoint: 'http://127.0.0.1:44699' },
        },
      },
      {
        status: 'not_ready',
        error: 'not ready: ec2',
        checks: {
          database: { ok: true },
          ansible: { ok: true, version: 'core 2.16.3' },
          ec2: { ok: false, endpoint: 'http://127.0.0.1:9', error: 'cannot reach the EC2 endpoint http://127.0.0.1:9: ECONNREFUSED' },
        },
      },
    ],
  },
);

/** Prometheus exposition format: documented, never serialised (the handler sends text). */
export const MetricsText = {
  description: 'Prometheus text exposition format 0.0.4',
  content: { 'text/plain; version=0.0.4': { schema: { type: 'string' } } },
} as const;
