// What a web page open in the operator's browser may not do (docs/API.md,
// Access). Two rules, checked before the bearer token:
//
// 1. Host (only without API_TOKENS): a DNS-rebinding page reaches 127.0.0.1
//    with its own name in `Host`, and its requests count as same-origin to the
//    browser. So, without tokens, a request must name the service by a
//    loopback name or address, by HOST, or by a name in EC2_API_ALLOWED_HOSTS
//    (a reverse proxy's). With tokens this adds nothing: the page cannot know
//    one. The open routes (/healthz, the console's files) hold nothing secret
//    and answer any Host, as they answer without a token: probes that name a
//    pod's address keep working.
// 2. Cross-site (always): a request that changes something — any method but
//    GET, HEAD and OPTIONS, and the compat GET deletes, which declare
//    `config: { changesState: true }` — is refused when the browser marks it
//    as coming from another site: `Sec-Fetch-Site` other than `same-origin`
//    or `none`, or, from browsers that do not send that header, an `Origin`
//    whose host is not `Host`. A request with neither header (curl, the CLI)
//    is not a browser's and passes. This is the rule of Go's
//    net/http.CrossOriginProtection.
//
// Reads need no cross-site rule: another site's page can send a GET but not
// read the answer (no CORS here), and a rebinding page is stopped by rule 1.
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import { hostName, isLoopback } from '../config.js';
import { isPublicRoute } from './auth.js';
import { sendError } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A GET that changes something (the compat deletes): refused from another site like a POST. */
    changesState?: boolean;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Whether a route changes something, and so refuses requests from another site. */
export function changesState(route: Pick<RouteOptions, 'method' | 'config'>): boolean {
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  return route.config?.changesState === true || methods.some((method) => !SAFE_METHODS.has(method.toUpperCase()));
}

export const UNKNOWN_HOST =
  'this service answers only requests that name it by localhost, 127.0.0.1, [::1] or its HOST, as a web page ' +
  'using DNS rebinding would not: use one of those in the URL, add the name to EC2_API_ALLOWED_HOSTS ' +
  '(behind a reverse proxy), or set API_TOKENS';

export const CROSS_SITE =
  'a request from a web page of another site may not change anything here: use the console at /ui ' +
  'of this service, the ec2-api CLI, or curl';

/** The host that `Host` names, as URLs spell it; undefined when there is none, null when it is not a host. */
const requestHost = (request: FastifyRequest): string | null | undefined =>
  request.headers.host === undefined ? undefined : hostName(request.headers.host);

/** Go's CrossOriginProtection.Check: Sec-Fetch-Site first; else Origin against Host; neither = not a browser. */
export function isCrossSite(headers: FastifyRequest['headers']): boolean {
  const site = headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== '') return site !== 'same-origin' && site !== 'none';
  const origin = headers.origin;
  if (origin === undefined || origin === '') return false;
  let originHost: string;
  try {
    originHost = new URL(origin).host; // "null" (a sandboxed frame, a file) throws: refused
  } catch {
    return true;
  }
  return originHost.toLowerCase() !== String(headers.host ?? '').toLowerCase();
}

export interface BrowserGuardOptions {
  /** Whether the server requires bearer tokens (API_TOKENS set): then any Host is accepted. */
  tokens: boolean;
  /** HOST, the address the server listens on. */
  host: string;
  /** EC2_API_ALLOWED_HOSTS, as URLs spell them. */
  allowedHosts: string[];
}

export function registerBrowserGuard(app: FastifyInstance, { tokens, host, allowedHosts }: BrowserGuardOptions): void {
  const known = new Set([...allowedHosts, ...[hostName(host)].filter((name): name is string => name !== null)]);
  const knownHost = (request: FastifyRequest): boolean => {
    const name = requestHost(request);
    // No Host at all is no browser's request (every browser sends one).
    return name === undefined || (name !== null && (isLoopback(name) || known.has(name)));
  };

  app.addHook('onRequest', async (request, reply) => {
    if (!tokens && !isPublicRoute(request) && !knownHost(request)) return sendError(reply, 403, UNKNOWN_HOST);
    if (changesState({ method: request.method, config: request.routeOptions.config }) && isCrossSite(request.headers)) {
      return sendError(reply, 403, CROSS_SITE);
    }
  });
}
