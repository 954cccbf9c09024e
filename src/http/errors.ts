// One error shape for every 4xx/5xx: `{ "error": "<sentence>", "field"?: … }`.
// No stack traces, no paths, nothing from a request echoed back.
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { FIELD_HINTS } from './schemas.js';

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

interface ValidationIssue {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
}

/** Turns Ajv's first complaint into a sentence naming the field. */
function describeValidation(issue: ValidationIssue, context: string): { error: string; field?: string } {
  if (issue.keyword === 'additionalProperties') {
    const field = String(issue.params.additionalProperty);
    return { error: `unknown field "${field}": only ${context === 'body' ? 'username and password are' : 'listed fields are'} accepted`, field };
  }
  if (issue.keyword === 'required') {
    const field = String(issue.params.missingProperty);
    return { error: `"${field}" is required${FIELD_HINTS[field] ? `: ${FIELD_HINTS[field]}` : ''}`, field };
  }
  const field = issue.instancePath.split('/').filter(Boolean).join('.') || context;
  if (issue.keyword === 'type' && field === context) {
    return { error: `the request ${context} must be a JSON object`, field };
  }
  const hint = FIELD_HINTS[field];
  return { error: `${field} is not valid${hint ? `: it must be ${hint}` : ` (${issue.keyword})`}`, field };
}

export function sendError(reply: FastifyReply, status: number, error: string, extra: Record<string, unknown> = {}) {
  return reply.code(status).type('application/json; charset=utf-8').send({ ...extra, error });
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | HttpError, request, reply) => {
    if (err instanceof HttpError) {
      reply.headers(err.headers);
      return sendError(reply, err.statusCode, err.message, err.extra);
    }
    if (err.validation && err.validation.length > 0) {
      return sendError(reply, 400, ...split(describeValidation(err.validation[0] as ValidationIssue, err.validationContext ?? 'body')));
    }
    const status = err.statusCode ?? 500;
    if (status < 500) {
      // Fastify's own client errors (bad JSON, body too large, wrong content
      // type) carry safe messages; keep them, in our shape.
      return sendError(reply, status, clientMessage(err));
    }
    request.log.error({ err }, 'request failed');
    return sendError(reply, 500, 'internal error; the service log has the details');
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(reply, 404, `no route ${request.method} ${request.url.split('?')[0]}; see the README for the routes`),
  );
}

function split(described: { error: string; field?: string }): [string, Record<string, unknown>] {
  const { error, ...extra } = described;
  return [error, extra];
}

function clientMessage(err: FastifyError): string {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'the request body is too large';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'send the body as JSON with Content-Type: application/json';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'the request body is empty; send a JSON object';
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    default:
      if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return 'the request body is not valid JSON';
      return err.message;
  }
}
