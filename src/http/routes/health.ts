// The ops routes. /healthz: liveness, and which EC2 this service talks to (a
// newcomer on the local emulator must be able to tell at a glance that
// nothing real is launched); no I/O. /readyz: whether the database, ansible
// and the EC2 endpoint answer. /metrics: Prometheus text.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Registry } from 'prom-client';
import type { Cloud } from '../../ansible/cloud.js';
import { CALL_KINDS, type CallPacer } from '../../ansible/pacer.js';
import type { TaskService } from '../../tasks/service.js';
import { ANSIBLE_CACHE_SECONDS, EC2_TIMEOUT_MS, type Readiness as ReadinessCheck } from '../readiness.js';
import { MetricsText, Readiness } from '../resource-schemas.js';
import { described, Health } from '../schemas.js';

/** The tag of these routes (and of /openapi.json and /docs) in /openapi.json. */
export const OPS_TAG = { name: 'ops', description: 'Liveness, readiness, metrics and this document' };
const tags = [OPS_TAG.name];

export interface HealthOptions {
  tasks: TaskService;
  cloud: Pick<Cloud, 'kind' | 'endpointUrl' | 'region' | 'description'>;
  paused: boolean;
  readiness: ReadinessCheck;
  metrics: Registry;
  pacer: CallPacer;
}

const healthRoutes: FastifyPluginAsyncTypebox<HealthOptions> = async (app, { tasks, cloud, paused, readiness, metrics, pacer }) => {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        operationId: 'health',
        summary: 'Liveness and cloud in use',
        description:
          'Cheap (no I/O): the process answers. Says which EC2 is in use, how busy the service is, and how its EC2 calls are paced ' +
          '(tokens left, calls throttled, current rate per kind). Never needs a token.',
        tags,
        response: { 200: described('The process is alive; which EC2 it uses, how busy it is and how its EC2 calls are paced', Health) },
      },
    },
    async () => {
      const { queued, runningPlaybooks } = await tasks.stats();
      return {
        status: 'ok' as const,
        cloud: { kind: cloud.kind, endpoint: cloud.endpointUrl, region: cloud.region, description: cloud.description },
        accepting: tasks.isAccepting,
        paused,
        queued,
        running_playbooks: runningPlaybooks,
        pacing: {
          limits: Object.fromEntries(CALL_KINDS.map((kind) => [kind, `${pacer.limits[kind].capacity}/${pacer.limits[kind].refillPerSecond}`])),
          node: pacer.node,
          buckets: (await pacer.snapshot()).map(({ configuredRate, ...bucket }) => ({ ...bucket, configured_rate: configuredRate })),
        },
      };
    },
  );

  app.get(
    '/readyz',
    {
      schema: {
        operationId: 'readiness',
        summary: 'Readiness: database, ansible-playbook and EC2 endpoint',
        description:
          `Runs \`SELECT 1\` on the database, \`ansible-playbook --version\` (at most once every ${ANSIBLE_CACHE_SECONDS} s, ` +
          `then cached) and an HTTP GET of the EC2 endpoint (${EC2_TIMEOUT_MS / 1000} s timeout; any HTTP answer counts). ` +
          '503 names the failing checks.',
        tags,
        response: {
          200: described('Ready: every check passed', Readiness),
          503: described('Not ready: the failing checks carry an `error`', Readiness),
        },
      },
    },
    async (_request, reply) => {
      const { ready, checks } = await readiness.check();
      if (ready) return reply.code(200).send({ status: 'ready' as const, checks });
      const failing = Object.entries(checks)
        .filter(([, check]) => !check.ok)
        .map(([name]) => name);
      return reply.code(503).send({ status: 'not_ready' as const, error: `not ready: ${failing.join(', ')}`, checks });
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        operationId: 'metrics',
        summary: 'Prometheus metrics',
        description:
          'Task counts by action and status, queue depth, running playbooks, playbook and HTTP request duration ' +
          'histograms, EC2 call pacing (tokens left, rate, calls and throttled calls per kind), and the process metrics; ' +
          'every name starts with `ec2_api_`.',
        tags,
        response: { 200: MetricsText },
      },
    },
    async (_request, reply) => reply.type(metrics.contentType).send(await metrics.metrics()),
  );
};

export default healthRoutes;
