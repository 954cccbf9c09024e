// The operators' web console: one HTML page at /ui (and its deep links, such
// as /ui/tasks/<id>), its scripts and styles under /ui/assets/, and / sending
// browsers there. Everything is read from the build (`npm run build`):
// dist/console from src/console, and the two modules of src/api that the
// console shares with the command-line client, dist/api, at /ui/api/ (where
// the console's relative imports of ../api/ lead); eventsource-parser is its
// package's own ESM build, from node_modules. Nothing comes from another
// origin. Files are sent by @fastify/static (ETag, 304, no path outside its
// directory), on routes of our own, so that they can be public.
//
// The page and its assets hold nothing secret, so they are open to all
// (`config.public`); every API call the page makes needs the bearer token as
// usual. The page is locked down by a strict Content-Security-Policy: scripts,
// styles, images and connections from this origin only, no inline script or
// style, no plugins, no framing, and Trusted Types required, so that a string
// can never be assigned to innerHTML and its kin even by mistake.
import fs from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
// Additions to Fastify's types: `schema.hide` (kept out of /openapi.json) from
// @fastify/swagger, `config.public` (no token needed) from our auth.
import type {} from '@fastify/swagger';
import type {} from '../auth.js';
import { projectRoot } from '../../config.js';
import { sendError } from '../errors.js';

export interface ConsoleOptions {
  /** Where the build is (default: dist/ under the project): the console in console/, the shared client modules in api/. */
  dist?: string;
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
  // Revalidated by ETag every time: the files change with each build.
  'cache-control': 'no-cache',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * Plain names (a-z, 0-9, '.', '_', '-', not starting with '.') of a script,
 * style sheet or picture, at most two subdirectories down: no path ever
 * leaves the directory, and index.html is only ever a page.
 */
const ASSET = /^(?:[a-z0-9][a-z0-9_-]*\/){0,2}[a-z0-9][a-z0-9._-]*\.(?:js|css|svg)$/i;

/** The modules of src/api that run in the console (the rest of src/api is types). */
const CLIENT_MODULES = new Set(['vocabulary.js', 'lifecycle.js']);

/** Pages of the console: each is the same HTML shell, which routes on the path. */
const PAGES = ['/ui', '/ui/', '/ui/tasks', '/ui/tasks/:id', '/ui/instances', '/ui/launch'];

const consoleRoutes: FastifyPluginAsync<ConsoleOptions> = async (app, options) => {
  const dist = options.dist ?? path.join(projectRoot, 'dist');
  const consoleDir = path.join(dist, 'console');
  const apiDir = path.join(dist, 'api');
  const parserDir = path.join(projectRoot, 'node_modules', 'eventsource-parser', 'dist');
  // serve: false: the routes are ours (below); this gives them reply.sendFile.
  await app.register(fastifyStatic, { root: consoleDir, serve: false, cacheControl: false, lastModified: false, index: false, dotfiles: 'ignore' });

  const route = { config: { public: true }, schema: { hide: true } } as const;
  const noAsset = (reply: FastifyReply) => sendError(reply, 404, 'no such console asset');
  const send = (reply: FastifyReply, name: string, dir = consoleDir) =>
    fs.existsSync(path.join(dir, name))
      ? reply.headers(COMMON_HEADERS).type(TYPES[path.extname(name)]!).sendFile(name, dir, { contentType: false })
      : noAsset(reply);

  app.get('/', route, async (_request, reply) => reply.redirect('/ui', 302));

  for (const url of PAGES) {
    app.get(url, route, async (_request, reply) => {
      if (!fs.existsSync(path.join(consoleDir, 'index.html'))) {
        return sendError(reply, 503, 'the console is not built: run `npm run build` (npm start does it)');
      }
      reply.header('content-security-policy', CONSOLE_CSP).header('x-frame-options', 'DENY');
      return send(reply, 'index.html');
    });
  }

  app.get<{ Params: { '*': string } }>('/ui/assets/*', route, async (request, reply) =>
    ASSET.test(request.params['*']) ? send(reply, request.params['*']) : noAsset(reply),
  );
  app.get<{ Params: { name: string } }>('/ui/api/:name', route, async (request, reply) =>
    CLIENT_MODULES.has(request.params.name) ? send(reply, request.params.name, apiDir) : noAsset(reply),
  );
  app.get('/ui/assets/vendor/eventsource-parser.js', route, async (_request, reply) => send(reply, 'index.js', parserDir));
};

export default consoleRoutes;
