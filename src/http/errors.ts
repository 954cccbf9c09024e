// One error shape for every 4xx/5xx, whoever raises it — a route, the
// engine's refusals, Fastify's validation and body parsing, or Node's HTTP
// parser: `{ "error": "<a sentence saying what to do>", "field"?: … }`.
// No stack traces, no paths, nothing from a request echoed back.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { Refusal, type RefusalKind } from '../tasks/refusal.js';
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

/** The status code of each of the engine's refusals, and the Retry-After of a 503. */
const REFUSAL_STATUS: Record<RefusalKind, { status: number; retryAfter?: string }> = {
  invalid: { status: 400 },
  key_conflict: { status: 409 },
  finished: { status: 409 },
  not_cancelable: { status: 409 },
  conflict: { status: 409 },
  not_found: { status: 404 },
  unavailable: { status: 503, retryAfter: '5' },
  queue_full: { status: 503, retryAfter: '30' },
};

export function refusalToHttp(refusal: Refusal): HttpError {
  const { status, retryAfter } = REFUSAL_STATUS[refusal.kind];
  return new HttpError(status, refusal.message, refusal.field ? { field: refusal.field } : {}, retryAfter ? { 'Retry-After': retryAfter } : {});
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
    return { error: `unknown field "${field}": only the fields listed in /openapi.json for this route are accepted`, field };
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

const INVALID_JSON = 'the request body is not valid JSON; send a JSON object such as {"username": "…", "password": "…"}';

/** What to tell a client about the errors Fastify raises before a route runs. */
function clientMessage(err: FastifyError): string {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'the request body is too large: send only the fields this route takes (at most 16 KiB)';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'send the body as JSON with Content-Type: application/json';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'the request body is empty; send a JSON object';
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'the Content-Length header does not match the body; send the body as it is';
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return INVALID_JSON;
    default:
      if (err instanceof SyntaxError) return INVALID_JSON;
      // Anything else Fastify refuses (a malformed URL, a bad header): say it in words, without echoing the input.
      return `the request could not be read (${err.code ?? 'bad request'}); check the URL, headers and body against /openapi.json`;
  }
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | HttpError | Refusal, request, reply) => {
    if (err instanceof Refusal) err = refusalToHttp(err);
    if (err instanceof HttpError) {
      reply.headers(err.headers);
      return sendError(reply, err.statusCode, err.message, err.extra);
    }
    if (err.validation && err.validation.length > 0) {
      return sendError(reply, 400, ...split(describeValidation(err.validation[0] as ValidationIssue, err.validationContext ?? 'body')));
    }
    const status = err.statusCode ?? 500;
    if (status < 500) return sendError(reply, status, clientMessage(err));
    request.log.error({ err }, 'request failed');
    return sendError(reply, 500, 'internal error; the service log has the details');
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(reply, 404, `no route ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}; /openapi.json lists the routes`),
  );
}

function split(described: { error: string; field?: string }): [string, Record<string, unknown>] {
  const { error, ...extra } = described;
  return [error, extra];
}

/** Fastify's router refused the URL before any route ran (FastifyServerOptions.frameworkErrors). */
export function frameworkErrors(error: FastifyError, _request: unknown, reply: FastifyReply): void {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    void sendError(reply, 414, 'a part of the URL is too long (a task id has 36 characters, an IP address at most 15); check the URL');
  } else if (error.code === 'FST_ERR_BAD_URL') {
    void sendError(reply, 400, 'the URL is not valid (a malformed %-escape); check the URL');
  } else {
    void sendError(reply, 400, clientMessage(error));
  }
}

/** Node's HTTP parser refused the request before Fastify saw it. */
const PARSER_ERRORS: Record<string, { status: number; error: string }> = {
  HPE_HEADER_OVERFLOW: {
    status: 431,
    error: 'the request line and headers are too large (URL or headers over 16 KiB); shorten the URL or drop headers',
  },
  HPE_URI_TOO_LONG: { status: 414, error: 'the URL is too long; shorten it' },
};

/** Fastify's clientErrorHandler: the socket gets a JSON answer in the API's shape, then is closed. */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const known = PARSER_ERRORS[err.code ?? ''];
  const { status, error } =
    known ??
    (err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? { status: 408, error: 'the request took too long to arrive; send it again in one go' }
      : { status: 400, error: 'the request is not valid HTTP; check the request line and headers' });
  const body = `${JSON.stringify({ error })}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
