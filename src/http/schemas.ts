// TypeBox schemas for every body, parameter and response. Fastify validates
// requests and serialises responses with them, so a field not listed here
// never leaves the service.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { USERNAME_PATTERN } from '../login/accounts.js';
import { TTL_MAX, TTL_MIN } from '../config.js';
import { INSTANCE_STATES, IPV4_PATTERN, TASK_ACTIONS, TASK_REASONS, TASK_STATUSES } from '../tasks/model.js';

export const Literals = <T extends string>(values: readonly T[]) => Type.Union(values.map((value) => Type.Literal(value)));

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

export { IPV4_PATTERN } from '../tasks/model.js';
export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

export const FIELD_HINTS: Record<string, string> = {
  username: '1–32 characters: lowercase letters, digits, "_" or "-", starting with a letter or "_"',
  password: '8–128 printable characters (no control characters)',
  ip: 'a dotted-quad IPv4 address such as 54.1.2.3',
  id: 'a task id (UUID) as returned by /create-async',
  'idempotency-key': '1–255 printable ASCII characters',
  ttl: `a whole number of seconds from ${TTL_MIN} (a minute) to ${TTL_MAX} (30 days)`,
};

/** A lifetime: how long from now (or from acceptance, for a create) until the instance is terminated. */
const Ttl = (description: string) =>
  Type.Integer({ minimum: TTL_MIN, maximum: TTL_MAX, description: `${description}: ${FIELD_HINTS.ttl}`, examples: [7200] });

export const CreateBody = Type.Object(
  {
    username: Type.String({ pattern: USERNAME_PATTERN, maxLength: 32, description: FIELD_HINTS.username, examples: ['suitepad'] }),
    password: Type.String({
      minLength: 8,
      maxLength: 128,
      pattern: '^\\P{C}+$',
      description: `${FIELD_HINTS.password}; never stored or echoed, only its SHA-512-crypt hash`,
      examples: ['suitepad'],
    }),
    ttl: Type.Optional(
      Ttl(
        'Seconds the instance lives, counted from when the create is accepted; then the service terminates it ' +
          '(a delete task with reason "expired"). Without it, EC2_API_DEFAULT_TTL applies; unset, no expiry',
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'The login account to create on the new instance (cloud-init user-data, SSH password login on), and its optional lifetime',
    examples: [{ username: 'suitepad', password: 'suitepad' }, { username: 'suitepad', password: 'suitepad', ttl: 7200 }],
  },
);

/** PATCH /instances/<ip>. */
export const ExtendBody = Type.Object(
  { ttl: Ttl('Seconds from now until the instance is terminated') },
  { additionalProperties: false, description: 'The new lifetime of the instance, from now', examples: [{ ttl: 7200 }] },
);

/** The answer of PATCH /instances/<ip>. */
export const InstanceLifetime = Type.Object(
  {
    ip: Type.String(),
    instance_id: Nullable(Type.String()),
    task_id: Type.String({ description: 'The create task that launched the instance' }),
    created_by: Type.String({ description: "The name of the token that launched it (API_TOKENS' name=token)" }),
    expires_at: Type.String({ description: 'When the service terminates the instance' }),
  },
  {
    description: 'The instance and its new expiry',
    examples: [
      {
        ip: '54.214.60.94',
        instance_id: 'i-70542eecb742cb281',
        task_id: '01a21c5a-6dbb-7575-a344-8105e40c2f30',
        created_by: 'alice',
        expires_at: '2026-11-27T11:33:38.107Z',
      },
    ],
  },
);
export type CreateBody = Static<typeof CreateBody>;

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[\\x21-\\x7E]+$',
      description: `${FIELD_HINTS['idempotency-key']}: the same key with the same body returns the same task, never a second one; with another body, 409`,
      examples: ['deploy-42'],
    }),
  ),
});

export const IpParams = Type.Object({
  ip: Type.String({ pattern: IPV4_PATTERN, maxLength: 15, description: `The instance's public IP: ${FIELD_HINTS.ip}`, examples: ['54.214.104.69'] }),
});
export const TaskIdParams = Type.Object({
  id: Type.String({ pattern: UUID_PATTERN, maxLength: 36, description: FIELD_HINTS.id, examples: ['01a21c5a-6dbb-7575-a344-8105e40c2f30'] }),
});

/**
 * A response schema with what this status means on the route that answers
 * it: the response's description in /openapi.json (@fastify/swagger reads
 * `x-response-description` before the schema's own, which describes the shape).
 */
export const described = <T extends TSchema>(description: string, schema: T): T => ({ ...schema, 'x-response-description': description });

export const ErrorBody = Type.Object(
  {
    error: Type.String({ description: 'What went wrong, as a sentence a person can act on' }),
    field: Type.Optional(Type.String({ description: 'The input at fault, for validation errors' })),
  },
  {
    additionalProperties: true,
    description: 'Every 4xx/5xx answer: no stack trace, no internal path, nothing secret',
    examples: [
      {
        error: 'username is not valid: it must be 1–32 characters: lowercase letters, digits, "_" or "-", starting with a letter or "_"',
        field: 'username',
      },
    ],
  },
);

// Error answers several routes give, each fact written once.
export const INVALID = described('Invalid input (a field, a parameter or a header the schema refuses): `error` says what is wrong, `field` which input', ErrorBody);
export const NOT_ACCEPTED = described(
  'The task was not accepted: the service is shutting down, or too many tasks are waiting; retry after Retry-After',
  ErrorBody,
);
export const KEY_REUSED = described('Conflict: this Idempotency-Key was used with a different request body', ErrorBody);
export const NO_SUCH_TASK = described('No task has that id', ErrorBody);

export const Queued = Type.Object(
  {
    task_id: Type.String({ description: 'The task id; follow it at /status/<task_id>' }),
    message: Type.String({ description: '"create task queued" or "delete task queued"' }),
  },
  {
    description: 'The task is committed to disk and queued',
    examples: [{ task_id: '01a21c5a-6dbb-7575-a344-8105e40c2f30', message: 'create task queued' }],
  },
);

/** The answer of the sync routes, /create and /delete/<ip>, in the original's shape. */
export const OperationResult = Type.Object(
  {
    ip: Nullable(Type.String({ description: 'The public IP; null when the create did not succeed' })),
    status: Type.String({ description: 'running or terminated on success; not_found, failed, queued or running otherwise' }),
    task_id: Type.String({ description: 'The task that did the work; /status/<task_id> has the detail' }),
    instance_id: Type.Optional(Nullable(Type.String())),
    error: Type.Optional(Nullable(Type.String({ description: 'Why it failed, or that it is still going' }))),
  },
  {
    description: 'The answer of /create and /delete/<ip>, in the shape of the original service',
    examples: [
      { ip: '54.214.60.94', status: 'running', task_id: '01a21c6b-5b4e-7d1a-9c1f-6a0e2b3c4d5e', instance_id: 'i-70542eecb742cb281' },
      {
        ip: null,
        status: 'failed',
        task_id: '01a21c6b-5b4e-7d1a-9c1f-6a0e2b3c4d5e',
        error: 'the create playbook failed: UnauthorizedOperation; /status/<task_id> keeps the detail',
      },
    ],
  },
);

export const Progress = Type.Object(
  { step: Type.Integer(), of: Type.Integer(), name: Type.String({ description: 'The playbook task running now' }) },
  { description: 'Which playbook step the task is in' },
);

export const TaskStatus = Type.Object(
  {
    task_id: Type.String(),
    action: Literals(TASK_ACTIONS),
    status: Literals(TASK_STATUSES),
    ip: Nullable(Type.String()),
    instance_id: Nullable(Type.String()),
    instance_state: Nullable(Literals(INSTANCE_STATES)),
    error: Nullable(Type.String()),
    created_by: Type.String({ description: "The name of the token that asked for it (API_TOKENS' name=token; a bare token is default)" }),
    reason: Type.Union([Literals(TASK_REASONS), Type.Null()], {
      description: 'Why the service queued it itself: "expired" for the delete an expiry queued; null when a client asked',
    }),
    expires_at: Nullable(Type.String({ description: 'A create: when the service terminates its instance (its ttl); null: never' })),
    created_at: Type.String(),
    started_at: Nullable(Type.String()),
    finished_at: Nullable(Type.String()),
    progress: Nullable(Progress),
    attempts: Type.Integer({ description: 'Runs so far: more than 1 after a crash recovery' }),
  },
  {
    description: 'One task. ip, instance_id, instance_state, error, started_at and finished_at are null until known',
    examples: [
      {
        task_id: '01a21c5a-6dbb-7575-a344-8105e40c2f30',
        action: 'create',
        status: 'running',
        ip: null,
        instance_id: null,
        instance_state: null,
        error: null,
        created_by: 'alice',
        reason: null,
        expires_at: '2026-11-27T11:33:38.107Z',
        created_at: '2026-11-27T09:33:38.107Z',
        started_at: '2026-11-27T09:33:38.111Z',
        finished_at: null,
        progress: { step: 1, of: 4, name: 'Launch one instance per task' },
        attempts: 1,
      },
    ],
  },
);

const PacingBucket = Type.Object(
  {
    kind: Type.Union([Type.Literal('run_instances'), Type.Literal('terminate_instances'), Type.Literal('mutating'), Type.Literal('describe')]),
    endpoint: Type.String({ description: 'The EC2 endpoint the calls go to (empty: the Region\'s AWS endpoint)' }),
    region: Type.String(),
    account: Type.String({ description: 'A digest of the access key id: EC2 meters per account' }),
    capacity: Type.Number({ description: 'Tokens when full (EC2_API_RATE_*)' }),
    tokens: Type.Number({ description: 'Tokens left; below zero while calls wait for tokens already taken (with PostgreSQL: the bucket the nodes share)' }),
    rate: Type.Number({ description: 'Refill rate in use, tokens/s: lowered on RequestLimitExceeded, back up to configured_rate' }),
    configured_rate: Type.Number(),
    calls: Type.Integer({ description: 'Calls paced (every try) since the start, by this node' }),
    throttled: Type.Integer({ description: 'Calls EC2 answered with RequestLimitExceeded since the start, on this node' }),
  },
  { description: 'One client-side token bucket (docs/pacing.md)' },
);

export const Health = Type.Object(
  {
    status: Type.Literal('ok'),
    cloud: Type.Object({
      kind: Type.String(),
      endpoint: Nullable(Type.String()),
      region: Type.String(),
      description: Type.String(),
    }),
    accepting: Type.Boolean(),
    paused: Type.Boolean(),
    queued: Type.Integer({ description: 'Tasks waiting for a playbook run' }),
    running_playbooks: Type.Integer(),
    pacing: Type.Object(
      {
        limits: Type.Record(Type.String(), Type.String(), { description: 'Each kind\'s bucket, "capacity/refill per second"' }),
        node: Type.Union([Type.String(), Type.Null()], {
          description: 'This node (EC2_API_NODE_ID) when nodes share PostgreSQL and its buckets; null when the buckets are this process\'s',
        }),
        buckets: Type.Array(PacingBucket, { description: 'The buckets in use (made at the first call of their kind)' }),
      },
      { description: 'How EC2 calls are paced: one token bucket per account, Region and kind of call' },
    ),
  },
  {
    description: 'Liveness, and which EC2 this service talks to',
    examples: [
      {
        status: 'ok',
        cloud: {
          kind: 'local-emulator',
          endpoint: 'http://127.0.0.1:44699',
          region: 'us-east-1',
          description: 'the LOCAL EC2 EMULATOR (moto) at http://127.0.0.1:44699: no real instances are launched',
        },
        accepting: true,
        paused: false,
        queued: 0,
        running_playbooks: 0,
        pacing: {
          limits: { run_instances: '5/2', terminate_instances: '100/5', mutating: '50/5', describe: '100/20' },
          node: null,
          buckets: [
            {
              kind: 'run_instances',
              endpoint: 'http://127.0.0.1:44699',
              region: 'us-east-1',
              account: '4fe2c9b04f1a',
              capacity: 5,
              tokens: 3.5,
              rate: 2,
              configured_rate: 2,
              calls: 12,
              throttled: 0,
            },
          ],
        },
      },
    ],
  },
);

/** The params and answers of a GET of one task by id: /status/<id> (the contract) and /tasks/<id> answer alike. */
export const ONE_TASK = {
  params: TaskIdParams,
  response: { 200: described('The task', TaskStatus), 400: INVALID, 404: NO_SUCH_TASK },
};
