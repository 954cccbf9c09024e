// buildApp(): the Fastify application, given everything it depends on.
// No I/O happens here: tests build it around their own service and inject.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Cloud } from './ansible/cloud.js';
import type { Config } from './config.js';
import type { Db } from './tasks/db.js';
import type { TaskService } from './tasks/service.js';
import { registerAuth } from './http/auth.js';
import { registerErrorHandling } from './http/errors.js';
import { PasswordHasher } from './http/password.js';
import { registerEventStreams } from './http/sse.js';
import compatRoutes from './http/routes/compat.js';
import healthRoutes from './http/routes/health.js';
import instanceRoutes from './http/routes/instances.js';
import taskRoutes from './http/routes/tasks.js';
import { registerMetrics } from './observability/metrics.js';
import { registerOpenApi } from './observability/openapi.js';
import { ec2ProbeUrl, Readiness } from './observability/readiness.js';
import { REQUEST_ID_HEADER, requestIdFor } from './observability/request-id.js';

export interface AppDeps {
  config: Pick<
    Config,
    'apiTokens' | 'syncWait' | 'paused' | 'logLevel' | 'playbookDir' | 'projectDir' | 'ansiblePlaybook' | 'taskTimeout'
  >;
  service: TaskService;
  cloud: Pick<Cloud, 'kind' | 'endpointUrl' | 'region' | 'description' | 'env'>;
  /** The service's pino logger; without one, requests are not logged (tests). */
  logger?: FastifyBaseLogger;
  /** The service's database (runtime.db): task counts for /metrics, `SELECT 1` for /readyz. */
  db?: Db;
}

/** Logged fields that could hold a secret are replaced before they are written. */
export const REDACT = ['req.headers.authorization', 'req.body', 'req.body.password', 'password', '*.password'];

export function buildApp({ config, service, cloud, logger, db }: AppDeps): FastifyInstance {
  const app = Fastify({
    ...(logger ? { loggerInstance: logger } : { logger: false }),
    // X-Request-Id in (when well-formed) and out; pino's reqId on every line of the request.
    requestIdHeader: false,
    genReqId: requestIdFor,
    // The bodies here are tiny; anything larger is a mistake or an attack.
    bodyLimit: 16 * 1024,
    // A sync /create waits for its playbook: never cut it before syncWait.
    requestTimeout: (config.syncWait + 30) * 1000,
    ajv: {
      customOptions: {
        removeAdditional: false, // unknown fields are refused, not silently dropped
        coerceTypes: false, // "username": 123 is an error, not "123"
        allErrors: false,
      },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Only JSON bodies: a JSON body sent as text/plain gets a 415 that says so.
  app.removeContentTypeParser('text/plain');
  registerErrorHandling(app);
  // JSON answers end with a newline, as Flask's jsonify did: curl output stays readable.
  app.addHook('onSend', async (_request, reply, payload) =>
    typeof payload === 'string' && String(reply.getHeader('content-type') ?? '').startsWith('application/json') ? `${payload}\n` : payload,
  );
  app.addHook('onRequest', async (request, reply) => {
    reply.header(REQUEST_ID_HEADER, request.id);
  });
  registerAuth(app, config.apiTokens);
  // Before any route: the OpenAPI document collects every route registered after it.
  registerOpenApi(app, { tokens: config.apiTokens.length > 0 });
  const metrics = registerMetrics(app, { service, db });
  const readiness = new Readiness({
    service,
    db,
    ansiblePlaybook: config.ansiblePlaybook,
    ec2Endpoint: ec2ProbeUrl(cloud),
    log: app.log,
  });
  void app.register(healthRoutes, { service, cloud, paused: config.paused, readiness, metrics });
  const hasher = new PasswordHasher();
  void app.register(compatRoutes, { service, hasher, syncWait: config.syncWait });
  const streams = registerEventStreams(app);
  void app.register(taskRoutes, { service, streams, cancelWait: 120 });
  void app.register(instanceRoutes, {
    service,
    hasher,
    syncWait: config.syncWait,
    list: {
      playbookDir: config.playbookDir,
      projectDir: config.projectDir,
      ansiblePlaybook: config.ansiblePlaybook,
      env: cloud.env,
      timeoutSeconds: Math.min(config.taskTimeout, 300),
    },
  });
  void app.register(import('./http/routes/console.js'));
  return app;
}
