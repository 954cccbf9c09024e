// The OpenAPI document (/openapi.json) and its interactive UI (/docs), made
// from the routes' TypeBox schemas by @fastify/swagger. Registered before
// any route plugin, so every route added later is collected, whoever wrote it.
// Each route says what it is about (its tags, summary and description) and
// what each of its answers means; this file adds only the answers that come
// from outside the route: an unreadable request (400), a missing token
// (401), and what the browser guard refuses (403).
import fs from 'node:fs';
import path from 'node:path';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import type { OpenAPIV3_1 } from 'openapi-types';
import { projectRoot } from '../config.js';
import { changesState } from './browser-guard.js';
import { OPS_TAG } from './routes/health.js';
import { described, ErrorBody } from './schemas.js';

/** The answers that come from outside the routes, in the document. */
const UNREADABLE = described('The request could not be read (a malformed URL, header or body): `error` says what is wrong', ErrorBody);
const NO_TOKEN = described('No valid bearer token (only when the server is configured with API_TOKENS)', ErrorBody);
const FOREIGN_PAGE = 'the request came from a web page of another site (Sec-Fetch-Site, or Origin against Host)';
const UNKNOWN_NAME = 'without API_TOKENS, the request named this service by a host that is not loopback, HOST or EC2_API_ALLOWED_HOSTS';

let version: string | undefined;
/** The version in package.json, read once. */
export function packageVersion(): string {
  version ??= (JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}

type Responses = Record<string, unknown>;

/**
 * The document's view of a route, never the route itself: the answers it
 * gives for reasons outside its own code (400 for a request it cannot read,
 * 401 for a missing token, 403 for what the browser guard refuses), and that
 * an open route needs no token.
 */
function documentRoute(route: RouteOptions, open: boolean, tokens: boolean): FastifySchema | undefined {
  const schema = route.schema;
  if (!schema || schema.hide) return schema;
  const response: Responses = { ...((schema.response as Responses | undefined) ?? {}) };
  response['400'] ??= UNREADABLE;
  if (tokens && !open) response['401'] ??= NO_TOKEN;
  const refusals = [
    ...(changesState(route) ? [FOREIGN_PAGE] : []),
    ...(!tokens && !open ? [UNKNOWN_NAME] : []),
  ];
  if (refusals.length > 0) response['403'] ??= described(`Refused: ${refusals.join('; or ')}`, ErrorBody);
  return {
    ...schema,
    response,
    ...(open ? { security: [] } : {}),
  };
}

export interface OpenApiOptions {
  /** Whether the server requires bearer tokens (API_TOKENS set). */
  tokens: boolean;
  /** The tags the routes name, with what each groups, in the order the document lists them. */
  tags: { name: string; description: string }[];
}

export function registerOpenApi(app: FastifyInstance, { tokens, tags }: OpenApiOptions): void {
  void app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ec2-api',
        version: '', // filled in from package.json when the document is first made (buildApp does no I/O)
        description:
          'Launches and terminates AWS EC2 instances by running Ansible playbooks, while you wait or as durable ' +
          'background tasks. The five `compat` routes keep the paths and fields of the original Flask service.\n\n' +
          'Every error is JSON with at least `error` (a sentence a person can act on) and, for validation ' +
          'errors, `field`. When the server is configured with `API_TOKENS`, every route but `/healthz` (and the ' +
          "console's page) needs " +
          '`Authorization: Bearer <token>`. A web page of another site may change nothing (403); without ' +
          '`API_TOKENS`, a request must name the service by a loopback name or address, `HOST`, or a name in ' +
          '`EC2_API_ALLOWED_HOSTS` (403 otherwise; `/healthz` and the console\'s page answer any name).',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      tags,
      // The bearer scheme exists when the server was started with API_TOKENS, and then applies to every route but the open ones.
      ...(tokens
        ? {
            components: {
              securitySchemes: {
                bearerAuth: {
                  type: 'http',
                  scheme: 'bearer',
                  description: 'One of the tokens in API_TOKENS. /healthz and the console\'s page never need one.',
                },
              },
            },
          }
        : {}),
      servers: [{ url: '/', description: 'This server' }],
      // With API_TOKENS every route but the open ones needs the bearer token; without, none does (`{}`: no scheme).
      security: tokens ? [{ bearerAuth: [] }] : [{}],
    },
    transform: ({ schema, url, route }) => ({
      schema: documentRoute({ ...route, schema }, route.config?.public === true, tokens) as FastifySchema,
      url,
    }),
    transformObject: (document) => {
      const openapi = (document as { openapiObject: Partial<OpenAPIV3_1.Document> }).openapiObject;
      return { ...openapi, info: { title: 'ec2-api', ...openapi.info, version: packageVersion() } };
    },
  });

  void app.register(fastifySwaggerUi, {
    routePrefix: '/docs',
    // Everything is served from the package: no CDN; no external validator (the default).
    theme: { title: 'ec2-api: API docs' },
    uiConfig: { deepLinking: true, displayRequestDuration: true, tryItOutEnabled: false },
  });

  void app.register(async (instance) => {
    instance.get(
      '/openapi.json',
      {
        schema: {
          operationId: 'openapiDocument',
          summary: 'This API as an OpenAPI 3.1 document',
          description: 'Generated from the route schemas; /docs renders it.',
          tags: [OPS_TAG.name],
          response: { 200: { type: 'object', additionalProperties: true, description: 'The OpenAPI document' } },
        },
      },
      async () => instance.swagger(),
    );
  });
}
