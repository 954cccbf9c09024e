// The operators' web console: one HTML page at /ui (and its deep links, such
// as /ui/tasks/<id>), its scripts and styles under /ui/assets/, and / sending
// browsers there. Everything is read from dist/console (built by `npm run
// build` from src/console); nothing comes from another origin.
//
// The page and its assets hold nothing secret, so they are open to all
// (`config.public`); every API call the page makes needs the bearer token as
// usual. The page is locked down by a strict Content-Security-Policy: scripts,
// styles, images and connections from this origin only, no inline script or
// style, no plugins, no framing, and Trusted Types required, so that a string
// can never be assigned to innerHTML and its kin even by mistake.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
// Additions to Fastify's types: `schema.hide` (kept out of /openapi.json) from
// @fastify/swagger, `config.public` (no token needed) from our auth.
import type {} from '@fastify/swagger';
import type {} from '../auth.js';
import { projectRoot } from '../../config.js';
import { sendError } from '../errors.js';

export interface ConsoleOptions {
  /** Where the built console is (default: dist/console under the project). */
  dir?: string;
}

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

/** Headers on every console answer. */
const COMMON_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** Pages of the console: each is the same HTML shell, which routes on the path. */
const PAGES = ['/ui', '/ui/', '/ui/tasks', '/ui/tasks/:id', '/ui/instances', '/ui/launch'];

const consoleRoutes: FastifyPluginAsync<ConsoleOptions> = async (app, options) => {
  const dir = options.dir ?? path.join(projectRoot, 'dist', 'console');
  // Read on first use and kept: the files are small and only change with a build.
  const cache = new Map<string, Asset>();
  const load = (name: string): Asset | null => {
    const cached = cache.get(name);
    if (cached) return cached;
    let asset: Asset;
    try {
      const body = fs.readFileSync(path.join(dir, name));
      const type = name === 'index.html' ? 'text/html; charset=utf-8' : TYPES[path.extname(name)]!;
      asset = { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
    } catch {
      return null; // not built: said by the caller, and not cached, so a build that follows is picked up
    }
    cache.set(name, asset);
    return asset;
  };

  const send = (request: FastifyRequest, reply: FastifyReply, asset: Asset) => {
    reply.headers(COMMON_HEADERS).header('cache-control', 'no-cache').header('etag', asset.etag);
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
    return reply.type(asset.type).send(asset.body);
  };

  const route = { config: { public: true }, schema: { hide: true } } as const;

  app.get('/', route, async (_request, reply) => reply.redirect('/ui', 302));

  for (const url of PAGES) {
    app.get(url, route, async (request, reply) => {
      const page = load('index.html');
      if (!page) return sendError(reply, 503, 'the console is not built: run `npm run build` (npm start does it)');
      reply.header('content-security-policy', CONSOLE_CSP).header('x-frame-options', 'DENY');
      return send(request, reply, page);
    });
  }

  app.get<{ Params: { '*': string } }>('/ui/assets/*', route, async (request, reply) => {
    const name = request.params['*'];
    // Plain names (a-z, 0-9, '.', '_', '-', not starting with '.') with a known
    // extension, in at most one subdirectory: no path ever leaves the directory.
    const safe = /^(?:[a-z0-9][a-z0-9_-]*\/)?[a-z0-9][a-z0-9._-]*$/i.test(name) && TYPES[path.extname(name)] !== undefined;
    const asset = safe ? load(name) : null;
    if (!asset) return sendError(reply, 404, 'no such console asset');
    return send(request, reply, asset);
  });
};

export default consoleRoutes;
