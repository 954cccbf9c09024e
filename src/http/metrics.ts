// Prometheus metrics on a registry of the app's own (never prom-client's
// global one: tests build several apps in one process). Task counts are read
// from the database at scrape time, so they are right after a restart too;
// durations come from every playbook run (task batches, cleanups and
// instance listings alike) and from every response.
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BucketView, Pacer } from '../ansible/pacer.js';
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
export function registerMetrics(app: FastifyInstance, tasks: TaskService, pacer: Pacer): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  registerPacingMetrics(registry, pacer);

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

/** The pacer's buckets (docs/pacing.md), read at scrape time: one series per kind, endpoint, Region and account in use. */
function registerPacingMetrics(registry: Registry, pacer: Pacer): void {
  // One series per bucket, read at scrape time; a counter is set by inc() from zero, as prom-client has no set() for it.
  const configuration = (name: string, help: string) => ({ name: `${METRIC_PREFIX}${name}`, help, labelNames: BUCKET_LABELS, registers: [registry] });
  const gauge = (name: string, help: string, read: (bucket: BucketView) => number) =>
    new Gauge({
      ...configuration(name, help),
      collect() {
        this.reset();
        for (const bucket of pacer.snapshot()) this.set(bucketLabels(bucket), read(bucket));
      },
    });
  const counter = (name: string, help: string, read: (bucket: BucketView) => number) =>
    new Counter({
      ...configuration(name, help),
      collect() {
        this.reset();
        for (const bucket of pacer.snapshot()) this.inc(bucketLabels(bucket), read(bucket));
      },
    });
  gauge('pacing_tokens', 'Tokens left in the EC2 call bucket (below zero while calls wait for tokens they took)', (b) => b.tokens);
  gauge('pacing_rate', 'Refill rate in use, tokens per second (lowered on RequestLimitExceeded, back up to the configured rate)', (b) => b.rate);
  counter('pacing_calls_total', 'EC2 calls paced (every try), by kind of call', (b) => b.calls);
  counter('pacing_throttled_total', 'EC2 calls answered with RequestLimitExceeded (or another throttling error), by kind of call', (b) => b.throttled);
}
