// Bearer-token access: with API_TOKENS set, every route needs
// `Authorization: Bearer <token>` unless it declares `config: { public: true }`
// (/healthz, and the console's page and assets, which hold nothing secret).
// Tokens are compared as SHA-256 digests with timingSafeEqual, so neither
// their content nor their length leaks by timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { sendError } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Answers without a token even when API_TOKENS is set. */
    public?: boolean;
  }
}

/** Whether the route this request matched is open to anyone. Unmatched URLs (404s) are not. */
export const isPublicRoute = (request: FastifyRequest): boolean => request.routeOptions.config?.public === true;

const digest = (value: string) => createHash('sha256').update(value).digest();

export function registerAuth(app: FastifyInstance, tokens: string[]): void {
  if (tokens.length === 0) return;
  const digests = tokens.map(digest);

  app.addHook('onRequest', async (request, reply) => {
    if (isPublicRoute(request)) return;
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const presented = match ? digest(match[1]!) : null;
    // Compare against every token, always, so the time taken does not tell which matched.
    let ok = false;
    for (const known of digests) if (presented && timingSafeEqual(presented, known)) ok = true;
    if (!ok) {
      reply.header('WWW-Authenticate', 'Bearer realm="ec2-api"');
      return sendError(
        reply,
        401,
        match
          ? 'the bearer token is not valid: check it against the API_TOKENS the server was started with'
          : 'authentication required: send Authorization: Bearer <token> (one of the server\'s API_TOKENS)',
      );
    }
  });
}
