// Request ids: an incoming X-Request-Id is kept when it is safe to log and
// echo (up to 64 characters of [A-Za-z0-9._-]), else a UUID is made. It is
// pino's `reqId` on every log line of the request and the X-Request-Id of
// the response, so a client's report can be found in the log.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const REQUEST_ID_HEADER = 'x-request-id';
const VALID = /^[A-Za-z0-9._-]{1,64}$/;

export function requestIdFor(request: Pick<IncomingMessage, 'headers'>): string {
  const given = request.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && VALID.test(given) ? given : randomUUID();
}
