// buildApp(): the Fastify application, given everything it depends on.
// No I/O happens here: tests build it around their own service and inject.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Cloud } from './ansible/cloud.js';
import type { Config } from './config.js';
import type { TaskService } from './tasks/service.js';
import { registerAuth } from './http/auth.js';
import { registerErrorHandling } from './http/errors.js';
import compatRoutes from './http/routes/compat.js';
import healthRoutes from './http/routes/health.js';

export interface AppDeps {
  config: Pick<Config, 'apiTokens' | 'syncWait' | 'paused' | 'logLevel'>;
  service: TaskService;
  cloud: Pick<Cloud, 'kind' | 'endpointUrl' | 'region' | 'description'>;
  /** The service's pino logger; without one, requests are not logged (tests). */
  logger?: FastifyBaseLogger;
}

/** Logged fields that could hold a secret are replaced before they are written. */
export const REDACT = ['req.headers.authorization', 'req.body', 'req.body.password', 'password', '*.password'];

export function buildApp({ config, service, cloud, logger }: AppDeps): FastifyInstance {
  const app = Fastify({
    ...(logger ? { loggerInstance: logger } : { logger: false }),
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
  registerAuth(app, config.apiTokens);
  void app.register(healthRoutes, { service, cloud, paused: config.paused });
  void app.register(compatRoutes, { service, syncWait: config.syncWait });
  return app;
}
