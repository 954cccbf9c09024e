// Prometheus metrics on a registry of the app's own (never prom-client's
// global one: tests build several apps in one process). Task counts are read
// from the database at scrape time, so they are right after a restart too;
// durations come from every playbook run (task batches, cleanups and
// instance listings alike) and from every response.
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BucketView, CallPacer } from '../ansible/pacer.js';
import { TASK_ACTIONS, TASK_STATUSES } from '../tasks/model.js';
import type { TaskService } from '../tasks/service.js';

export const METRIC_PREFIX = 'ec2_api_';


/** A playbook run takes seconds against the emulator and minutes on AWS; the task timeout is 15 min by default. */
const PLAYBOOK_BUCKETS = [1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 450, 600, 900];
/** Most requests take milliseconds; a sync /create or /delete waits for its playbook. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900];

/**
 * Creates the registry and the metrics, feeds them from the service and from
 * every response of `app`, and stops listening to the service when `app`
 * closes. Call before the routes are registered.
 */
export function registerMetrics(app: FastifyInstance, tasks: TaskService, pacer: CallPacer): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  registerPacingMetrics(registry, pacer);

  if (pacer.node !== null) {
    // Nodes sharing PostgreSQL: which node this is, beside the cluster's queue (ec2_api_tasks, ec2_api_queue_depth).
    new Gauge({
      name: `${METRIC_PREFIX}node_info`,
      help: 'This node (EC2_API_NODE_ID), always 1: the other series are this node\'s, except the tasks and the queue (the shared table\'s) and the pacing tokens and rate (the shared buckets\')',
      labelNames: ['node'] as const,
      registers: [registry],
    }).set({ node: pacer.node }, 1);
  }

  new Gauge({
    name: `${METRIC_PREFIX}tasks`,
    help: 'Tasks in the database by action and status',
    labelNames: ['action', 'status'] as const,
    registers: [registry],
    async collect() {
      // Every pair is reported, 0 included: a series does not vanish when its last task moves on.
      this.reset();
      for (const action of TASK_ACTIONS) for (const status of TASK_STATUSES) this.set({ action, status }, 0);
      try {
        for (const row of await tasks.countByStatus()) this.set({ action: row.action, status: row.status }, row.count);
      } catch (err) {
        app.log.warn({ err }, 'metrics: cannot count the tasks');
      }
    },
  });

  new Gauge({
    name: `${METRIC_PREFIX}queue_depth`,
    help: 'Tasks waiting for a playbook run',
    registers: [registry],
    async collect() {
      this.set((await tasks.stats()).queued);
    },
  });

  new Gauge({
    name: `${METRIC_PREFIX}running_playbooks`,
    help: 'ansible-playbook processes running now (task batches, cleanups and instance listings)',
    registers: [registry],
    async collect() {
      this.set((await tasks.stats()).runningPlaybooks);
    },
  });

  const playbookDuration = new Histogram({
    name: `${METRIC_PREFIX}playbook_duration_seconds`,
    help: 'Duration of ansible-playbook runs, by playbook (create, delete, cancel, list) and outcome (ok, failed, timed_out, stopped)',
    labelNames: ['action', 'outcome'] as const,
    buckets: PLAYBOOK_BUCKETS,
    registers: [registry],
  });
  const stop = tasks.onRun((report) => playbookDuration.observe({ action: report.playbook, outcome: report.outcome }, report.seconds));
  app.addHook('onClose', async () => stop());

  const httpDuration = new Histogram({
    name: `${METRIC_PREFIX}http_request_duration_seconds`,
    help: 'HTTP request duration by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: HTTP_BUCKETS,
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern (/status/:id), never the raw URL: one series per route, not per task id.
    const route = request.routeOptions.url ?? 'unmatched';
    httpDuration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  return registry;
}

const BUCKET_LABELS = ['kind', 'endpoint', 'region', 'account'] as const;
const bucketLabels = (b: BucketView) => ({ kind: b.kind, endpoint: b.endpoint, region: b.region, account: b.account });

/**
 * The pacer's buckets (docs/pacing.md), read at scrape time: one series per
 * kind, endpoint, Region and account in use. With nodes sharing PostgreSQL,
 * tokens and rate are the shared bucket's, and the calls and throttles this
 * node's own, labelled `node`.
 */
function registerPacingMetrics(registry: Registry, pacer: CallPacer): void {
  const node = pacer.node;
  const configuration = (name: string, help: string, labelNames: readonly string[]) => ({ name: `${METRIC_PREFIX}${name}`, help, labelNames, registers: [registry] });
  const gauge = (name: string, help: string, read: (bucket: BucketView) => number) =>
    new Gauge({
      ...configuration(name, help, BUCKET_LABELS),
      async collect() {
        const buckets = await pacer.snapshot();
        this.reset();
        for (const bucket of buckets) this.set(bucketLabels(bucket), read(bucket));
      },
    });
  // A counter is set by inc() from zero, as prom-client has no set() for it.
  const counter = (name: string, help: string, read: (bucket: BucketView) => number) =>
    new Counter({
      ...configuration(name, help, node === null ? BUCKET_LABELS : [...BUCKET_LABELS, 'node']),
      async collect() {
        const buckets = await pacer.snapshot();
        this.reset();
        for (const bucket of buckets) this.inc(node === null ? bucketLabels(bucket) : { ...bucketLabels(bucket), node }, read(bucket));
      },
    });
  const shared = node === null ? '' : ' (the bucket the nodes share)';
  const own = node === null ? '' : ' (this node\'s)';
  gauge('pacing_tokens', `Tokens left in the EC2 call bucket (below zero while calls wait for tokens they took)${shared}`, (b) => b.tokens);
  gauge('pacing_rate', `Refill rate in use, tokens per second (lowered on RequestLimitExceeded, back up to the configured rate)${shared}`, (b) => b.rate);
  counter('pacing_calls_total', `EC2 calls paced (every try), by kind of call${own}`, (b) => b.calls);
  counter('pacing_throttled_total', `EC2 calls answered with RequestLimitExceeded (or another throttling error), by kind of call${own}`, (b) => b.throttled);
}
