// Bearer-token access, and who asks: with API_TOKENS set, every route needs
// `Authorization: Bearer <token>` unless it declares `config: { public: true }`
// (/healthz, and the console's page and assets, which hold nothing secret).
// The token's name becomes the request's owner (`request.owner`): what its
// tasks record as `created_by`, and what it may see (docs/API.md, Ownership);
// it is bound into every log line of the request. Without tokens every
// request is the `default` owner, which sees everything.
// Tokens are compared as SHA-256 digests with timingSafeEqual, so neither
// their content nor their length leaks by timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiToken } from '../config.js';
import { EVERYONE, type Owner } from '../tasks/model.js';
import { sendError } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Answers without a token even when API_TOKENS is set. */
    public?: boolean;
  }
  interface FastifyRequest {
    /** Who asks. On a public route without a valid token: nobody (no name, no rights). */
    owner: Owner;
  }
}

/** Whether the route this request matched is open to anyone. Unmatched URLs (404s) are not. */
export const isPublicRoute = (request: FastifyRequest): boolean => request.routeOptions.config?.public === true;

const digest = (value: string) => createHash('sha256').update(value).digest();

const NOBODY: Owner = { name: '', admin: false };

/** Tells who a request's bearer token names; each request is looked at once (the logger and the hook share it). */
export class Identities {
  private readonly known: { digest: Buffer; owner: Owner }[];
  private readonly seen = new WeakMap<IncomingMessage, Owner | null>();

  constructor(tokens: ApiToken[], admins: string[]) {
    this.known = tokens.map(({ name, token }) => ({ digest: digest(token), owner: { name, admin: admins.includes(name) } }));
  }

  /** Whether requests need a token. */
  get required(): boolean {
    return this.known.length > 0;
  }

  /** The owner the request's token names; null for no token or a wrong one (EVERYONE when no tokens are set). */
  identify(raw: IncomingMessage): Owner | null {
    if (!this.required) return EVERYONE;
    if (this.seen.has(raw)) return this.seen.get(raw)!;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(raw.headers.authorization ?? '');
    const presented = match ? digest(match[1]!) : null;
    // Compare against every token, always, so the time taken does not tell which matched.
    let owner: Owner | null = null;
    for (const known of this.known) if (presented && timingSafeEqual(presented, known.digest)) owner = known.owner;
    this.seen.set(raw, owner);
    return owner;
  }
}

export function registerAuth(app: FastifyInstance, identities: Identities): void {
  app.decorateRequest('owner', null as unknown as Owner);
  // Every line a request logs ("incoming request" included) names its token.
  if (identities.required) {
    app.setChildLoggerFactory((logger, bindings, options, raw) => {
      const owner = identities.identify(raw as IncomingMessage);
      return logger.child(owner ? { ...bindings, token: owner.name } : bindings, options);
    });
  }

  app.addHook('onRequest', async (request, reply) => {
    const owner = identities.identify(request.raw);
    request.owner = owner ?? NOBODY;
    if (owner || isPublicRoute(request)) return;
    reply.header('WWW-Authenticate', 'Bearer realm="ec2-api"');
    return sendError(
      reply,
      401,
      /^Bearer\s+\S+\s*$/i.test(request.headers.authorization ?? '')
        ? 'the bearer token is not valid: check it against the API_TOKENS the server was started with'
        : 'authentication required: send Authorization: Bearer <token> (one of the server\'s API_TOKENS)',
    );
  });
}
