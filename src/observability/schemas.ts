// TypeBox schemas of the ops routes this module adds (/readyz).
import { Type } from '@sinclair/typebox';

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
        '`ansible-playbook --version` runs (checked at most once a minute)',
      ),
      ec2: Check(
        { endpoint: Type.String({ description: 'The URL probed: AWS_ENDPOINT_URL, the emulator, or https://ec2.<region>.amazonaws.com/' }) },
        'The EC2 endpoint answers HTTP within 2 s (any status counts)',
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
