// The application as a Fastify plugin: its resources (the engine: database,
// cloud, password workers, task service), the HTTP layer around them, and
// the order in which everything stops. `buildApp()` gives tests and the
// server the same app; no I/O happens on import.
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import fp from 'fastify-plugin';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Cloud } from './ansible/cloud.js';
import type { Config } from './config.js';
import { Identities, registerAuth } from './http/auth.js';
import { registerBrowserGuard } from './http/browser-guard.js';
import engine from './http/engine.js';
import { clientErrorHandler, frameworkErrors, registerErrorHandling } from './http/errors.js';
import { registerMetrics } from './http/metrics.js';
import { registerOpenApi } from './http/openapi.js';
import { Readiness, ec2ProbeUrl } from './http/readiness.js';
import { REQUEST_ID_HEADER, requestIdFor } from './http/request-id.js';
import compatRoutes, { COMPAT_TAG } from './http/routes/compat.js';
import consoleRoutes from './http/routes/console.js';
import healthRoutes, { OPS_TAG } from './http/routes/health.js';
import instanceRoutes, { INSTANCES_TAG } from './http/routes/instances.js';
import taskRoutes, { TASKS_TAG } from './http/routes/tasks.js';
import { EventStreams } from './http/sse.js';

export interface AppOptions {
  config: Config;
  /** The EC2 to use instead of resolving one from the config (tests); the app does not stop it. */
  cloud?: Cloud;
}

/** Logged fields that could hold a secret are replaced before they are written. */
export const REDACT = ['req.headers.authorization', 'req.body', 'req.body.password', 'password', '*.password'];

/** How long a client may take to send its request (headers and body): a slow sender is cut off. */
const REQUEST_RECEIVE_TIMEOUT_MS = 30_000;

export function fastifyOptions(logger?: FastifyBaseLogger): FastifyServerOptions {
  return {
    ...(logger ? { loggerInstance: logger } : { logger: false }),
    // X-Request-Id in (when well-formed) and out; pino's reqId on every line of the request.
    requestIdHeader: false,
    genReqId: requestIdFor,
    // The bodies here are tiny; anything larger is a mistake or an attack.
    bodyLimit: 16 * 1024,
    // Start-up opens the database, starts the password thread and (without an
    // endpoint) the emulator, which may take 30 s itself: on a loaded host, or
    // at boot, that outlasts Fastify's default 10 s for a plugin to start.
    pluginTimeout: 120_000,
    // Bounds receiving the request only: a sync /create that waits minutes
    // for its playbook after the request has arrived is not cut by it.
    requestTimeout: REQUEST_RECEIVE_TIMEOUT_MS,
    // During shutdown the routes answer for themselves: /healthz says
    // "not accepting", new tasks get a 503 that says to retry.
    return503OnClosing: false,
    // Errors of Node's HTTP parser (431, 400) and of Fastify's router (414, 400) in the API's error shape.
    clientErrorHandler,
    frameworkErrors,
    ajv: {
      customOptions: {
        removeAdditional: false, // unknown fields are refused, not silently dropped
        coerceTypes: false, // "username": 123 is an error, not "123"
        allErrors: false,
      },
    },
  };
}

/** The whole service: resources first, then the HTTP layer, then the order of the stop. */
async function ec2Api(app: FastifyInstance, { config, cloud }: AppOptions): Promise<void> {
  registerErrorHandling(app);
  // JSON answers end with a newline, as Flask's jsonify did: curl output stays readable.
  app.addHook('onSend', async (_request, reply, payload) =>
    typeof payload === 'string' && String(reply.getHeader('content-type') ?? '').startsWith('application/json') ? `${payload}\n` : payload,
  );
  app.addHook('onRequest', async (request, reply) => {
    reply.header(REQUEST_ID_HEADER, request.id);
  });

  // Opens the database, the cloud, the password workers and the task
  // service; each one's onClose hook is added as it opens, and Fastify runs
  // them last-added first: tasks, workers, cloud, database.
  await app.register(engine, { config, cloud });
  const { tasks } = app.engine;

  // Before the token check: a web page of another site, or one that reached us by DNS rebinding, gets a 403.
  registerBrowserGuard(app, { tokens: config.apiTokens.length > 0, host: config.host, allowedHosts: config.allowedHosts });
  registerAuth(app, new Identities(config.apiTokens, config.admins));
  // Before any route: the OpenAPI document collects every route registered after it.
  registerOpenApi(app, { tokens: config.apiTokens.length > 0, tags: [COMPAT_TAG, TASKS_TAG, INSTANCES_TAG, OPS_TAG] });
  const metrics = registerMetrics(app, tasks, app.engine.pacer);
  const streams = new EventStreams();
  const readiness = new Readiness({
    tasks,
    ansiblePlaybook: config.ansiblePlaybook,
    ec2Endpoint: ec2ProbeUrl(app.engine.cloud),
    log: app.log,
  });

  await app.register(healthRoutes, { tasks, cloud: app.engine.cloud, paused: config.paused, readiness, metrics, pacer: app.engine.pacer });
  await app.register(compatRoutes, { tasks, syncWait: config.syncWait });
  await app.register(taskRoutes, { tasks, streams, cancelWait: config.cancelWait });
  await app.register(instanceRoutes, { tasks, syncWait: config.syncWait });
  await app.register(consoleRoutes);

  // The stop (app.close(), on SIGTERM/SIGINT), while requests are still answered; preClose hooks run in this order:
  // 1. new tasks are refused (503) and no batch starts;
  app.addHook('preClose', async () => tasks.refuseNewTasks());
  // 2. every event stream ends with a `stopping` event (it would hold the close forever);
  app.addHook('preClose', async () => streams.stopAll());
  // 3. running playbooks get EC2_API_SHUTDOWN_GRACE, then are stopped and their tasks requeued; waiters are answered.
  app.addHook('preClose', async () => tasks.drain(config.shutdownGrace));
  // Then the server closes once the last request is answered, and the engine's onClose hooks run.
}

/** The app as the server runs it, and as tests inject into it. Call `.ready()` (or listen) to open its resources. */
export function buildApp(options: AppOptions & { logger?: FastifyBaseLogger }) {
  const app = Fastify(fastifyOptions(options.logger)).withTypeProvider<TypeBoxTypeProvider>();
  void app.register(fp(ec2Api, { name: 'ec2-api' }), { config: options.config, cloud: options.cloud });
  return app;
}
