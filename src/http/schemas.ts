// TypeBox schemas for every body, parameter and response. Fastify validates
// requests and serialises responses with them, so a field not listed here
// never leaves the service.
import { Type, type Static } from '@sinclair/typebox';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

export const USERNAME_PATTERN = '^[a-z_][a-z0-9_-]{0,31}$';
/** Dotted-quad IPv4, each part 0–255 without leading zeros. */
export const IPV4_PATTERN = '^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$';
export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

/**
 * Accounts that exist on the images we launch, or that tools treat as
 * privileged: a login made with one of these names would take it over.
 */
export const SYSTEM_ACCOUNTS: ReadonlySet<string> = new Set([
  'root', 'daemon', 'bin', 'sys', 'sync', 'games', 'man', 'lp', 'mail', 'news', 'uucp', 'proxy',
  'www-data', 'backup', 'list', 'irc', 'gnats', 'nobody', 'nogroup', 'systemd-network',
  'systemd-resolve', 'systemd-timesync', 'systemd-journal', 'messagebus', 'syslog', 'sshd', 'adm',
  'admin', 'administrator', 'shutdown', 'halt', 'operator', 'ftp', 'postfix', 'chrony', 'dbus',
  'polkitd', 'rpc', 'rpcuser', 'tss', 'tcpdump', 'ec2-user', 'ec2-instance-connect', 'centos',
  'ubuntu', 'debian', 'fedora', 'rocky', 'almalinux', 'cloud-user', 'ssm-user', 'wheel', 'sudo',
]);

export const FIELD_HINTS: Record<string, string> = {
  username: '1–32 characters: lowercase letters, digits, "_" or "-", starting with a letter or "_"',
  password: '8–128 printable characters (no control characters)',
  ip: 'a dotted-quad IPv4 address such as 54.1.2.3',
  id: 'a task id (UUID) as returned by /create-async',
  'idempotency-key': '1–255 printable ASCII characters',
};

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
  },
  { additionalProperties: false },
);
export type CreateBody = Static<typeof CreateBody>;

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7E]+$' })),
});

export const IpParams = Type.Object({ ip: Type.String({ pattern: IPV4_PATTERN, maxLength: 15 }) });
export const TaskIdParams = Type.Object({ id: Type.String({ pattern: UUID_PATTERN, maxLength: 36 }) });

export const ErrorBody = Type.Object(
  {
    error: Type.String(),
    field: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

export const Queued = Type.Object({ task_id: Type.String(), message: Type.String() });

/** The answer of the sync routes, /create and /delete/<ip>, in the original's shape. */
export const OperationResult = Type.Object({
  ip: Nullable(Type.String()),
  status: Type.String(),
  task_id: Type.String(),
  instance_id: Type.Optional(Nullable(Type.String())),
  error: Type.Optional(Nullable(Type.String())),
});

export const Progress = Type.Object({ step: Type.Integer(), of: Type.Integer(), name: Type.String() });

export const TaskStatus = Type.Object({
  task_id: Type.String(),
  action: Type.Union([Type.Literal('create'), Type.Literal('delete')]),
  status: Type.Union(['queued', 'running', 'succeeded', 'failed', 'canceled'].map((s) => Type.Literal(s))),
  ip: Nullable(Type.String()),
  instance_id: Nullable(Type.String()),
  instance_state: Nullable(Type.String()),
  error: Nullable(Type.String()),
  created_at: Type.String(),
  started_at: Nullable(Type.String()),
  finished_at: Nullable(Type.String()),
  progress: Nullable(Progress),
  attempts: Type.Integer(),
});

export const Health = Type.Object({
  status: Type.Literal('ok'),
  cloud: Type.Object({
    kind: Type.String(),
    endpoint: Nullable(Type.String()),
    region: Type.String(),
    description: Type.String(),
  }),
  accepting: Type.Boolean(),
  paused: Type.Boolean(),
  queued: Type.Integer(),
  running_playbooks: Type.Integer(),
});
