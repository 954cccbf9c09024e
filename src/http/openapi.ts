// The OpenAPI document (/openapi.json) and its interactive UI (/docs), made
// from the routes' TypeBox schemas by @fastify/swagger. Registered before
// any route plugin, so every route added later is collected, whoever wrote it.
import fs from 'node:fs';
import path from 'node:path';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import type { OpenAPIV3_1 } from 'openapi-types';
import { projectRoot } from '../config.js';
import { ErrorBody, Health, OperationResult, Queued, TaskStatus } from '../http/schemas.js';

export const TAGS = [
  { name: 'compat', description: 'The five routes of the original Flask service: same paths, same fields' },
  { name: 'tasks', description: 'Tasks: list, follow, cancel, read their playbook log' },
  { name: 'instances', description: 'The instances this service launched' },
  { name: 'ops', description: 'Liveness, readiness, metrics and this document' },
];

/** The tag a route gets when its schema names none, from its path. */
export function defaultTag(url: string): string | undefined {
  if (/^\/(create|delete)(\b|-|\/|$)/.test(url) || /^\/status(\/|$)/.test(url)) return 'compat';
  if (/^\/(tasks|events)(\/|$)/.test(url)) return 'tasks';
  if (/^\/instances(\/|$)/.test(url)) return 'instances';
  if (/^\/(healthz|readyz|metrics|openapi\.json)$/.test(url) || /^\/docs(\/|$)/.test(url)) return 'ops';
  return undefined;
}

/** What a status means on any route, when nothing more specific is known. */
const STATUS_TEXT: Record<string, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  204: 'No content',
  400: 'Invalid request (input the schema refuses, or a malformed URL): `error` says what is wrong, `field` which input',
  401: 'No valid bearer token (only when the server is configured with API_TOKENS)',
  404: 'Not found',
  409: 'Conflict',
  422: 'The request is valid but cannot be carried out',
  500: 'Internal error; the service log has the details',
  502: 'The playbook or EC2 failed: `error` says why',
  503: 'Unavailable: shutting down, or the queue is full (see Retry-After)',
  504: 'Still running after the wait limit: the task goes on',
};

/** The compatibility routes, as docs/API.md describes them. */
const COMPAT_TEXT: Record<string, string> = {
  202: 'Accepted: the task is stored and queued; the Location header names its /status URL',
  409: 'Conflict: this Idempotency-Key was used with a different request body',
  502: 'The playbook failed: `error` says why, /status/<task_id> keeps the detail',
  504: 'Still running after EC2_API_SYNC_WAIT: the task goes on; follow /status/<task_id>',
};

/** Route-specific answers, where the texts above would say too little. */
const ROUTE_STATUS_TEXT: Record<string, Record<string, string>> = {
  '/create': { 200: 'Launched and running' },
  '/delete/:ip': { 200: 'Terminated', 404: 'No instance launched by this service has that public IP' },
  '/status/:id': { 200: 'The task', 404: 'No task has that id' },
  '/healthz': { 200: 'The process is alive; which EC2 it uses and how busy it is' },
  '/readyz': { 200: 'Ready: every check passed', 503: 'Not ready: the failing checks carry an `error`' },
  '/events': { 503: 'Too many event streams are open, or the service is shutting down: reconnect after Retry-After' },
  '/tasks/:id/events': { 503: 'Too many event streams are open, or the service is shutting down: reconnect after Retry-After' },
};

/** Shared schemas whose description is about the shape, not about one answer: a status text says more. */
const SHAPE_SCHEMAS: ReadonlySet<unknown> = new Set([ErrorBody, OperationResult, Queued, TaskStatus, Health]);

function statusText(url: string, code: string): string | undefined {
  return ROUTE_STATUS_TEXT[url]?.[code] ?? (defaultTag(url) === 'compat' ? COMPAT_TEXT[code] : undefined) ?? STATUS_TEXT[code];
}

let version: string | undefined;
/** The version in package.json, read once. */
export function packageVersion(): string {
  version ??= (JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}

type Responses = Record<string, unknown>;

/**
 * The document's view of a route, never the route itself: the 400 any route
 * answers to a request it cannot read (a malformed URL, or input its schema
 * refuses), the 401 of a protected route when tokens are on, who needs a
 * token, and a description for every status.
 */
function documentRoute(schema: FastifySchema | undefined, url: string, open: boolean, tokens: boolean): FastifySchema | undefined {
  if (!schema || schema.hide) return schema;
  const response: Responses = { ...((schema.response as Responses | undefined) ?? {}) };
  if (!('400' in response)) response['400'] = ErrorBody;
  if (tokens && !open && !('401' in response)) response['401'] = ErrorBody;
  for (const [code, answer] of Object.entries(response)) {
    if (!answer || typeof answer !== 'object' || 'content' in answer) continue;
    // A route-specific text here first, then the route's own description of its answer, then the generic one.
    const specific = ROUTE_STATUS_TEXT[url]?.[code];
    if (!specific && 'description' in answer && !SHAPE_SCHEMAS.has(answer)) continue;
    const text = statusText(url, code);
    if (!text) continue;
    response[code] = { ...answer, 'x-response-description': text };
  }
  return {
    ...schema,
    ...(Object.keys(response).length ? { response } : {}),
    ...(open ? { security: [] } : {}),
  };
}

export interface OpenApiOptions {
  /** Whether the server requires bearer tokens (API_TOKENS set). */
  tokens: boolean;
}

export function registerOpenApi(app: FastifyInstance, { tokens }: OpenApiOptions): void {
  // Fill in a tag from the path for routes that give none. Added before any
  // plugin loads, so it runs for every route, before @fastify/swagger records it.
  app.addHook('onRoute', (route: RouteOptions) => {
    if (route.schema?.tags?.length || route.schema?.hide) return;
    const tag = defaultTag(route.url);
    if (tag) route.schema = { ...route.schema, tags: [tag] };
  });

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
          '`Authorization: Bearer <token>`.',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      tags: TAGS,
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
      schema: documentRoute(schema, url, route.config?.public === true, tokens) as FastifySchema,
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
          tags: ['ops'],
          response: { 200: { type: 'object', additionalProperties: true, description: 'The OpenAPI document' } },
        },
      },
      async () => instance.swagger(),
    );
  });
}
