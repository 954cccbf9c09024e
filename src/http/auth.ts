// Bearer-token access: with API_TOKENS set, every route but /healthz needs
// `Authorization: Bearer <token>`. Tokens are compared as SHA-256 digests with
// timingSafeEqual, so neither their content nor their length leaks by timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { sendError } from './errors.js';

const OPEN_ROUTES = new Set(['/healthz']);

const digest = (value: string) => createHash('sha256').update(value).digest();

export function registerAuth(app: FastifyInstance, tokens: string[]): void {
  if (tokens.length === 0) return;
  const digests = tokens.map(digest);

  app.addHook('onRequest', async (request, reply) => {
    if (OPEN_ROUTES.has(request.url.split('?')[0]!)) return;
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const presented = match ? digest(match[1]!) : null;
    // Compare against every token, always, so the time taken does not tell which matched.
    let ok = false;
    for (const known of digests) if (presented && timingSafeEqual(presented, known)) ok = true;
    if (!ok) {
      reply.header('WWW-Authenticate', 'Bearer realm="ec2-api"');
      return sendError(reply, 401, match ? 'the bearer token is not valid' : 'authentication required: send Authorization: Bearer <token>');
    }
  });
}
