// The HTTP client: where the server is, the token, and what a refusal means
// for the user. Requests and responses are typed by api.ts, generated from
// the service's /openapi.json; this is the only module that knows about
// status codes.
import createClient, { type Client } from 'openapi-fetch';
import type { paths } from '../api/openapi.js';
import { CliError, EXIT, usageError } from './errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:5000';

export type Api = Client<paths>;

export interface Connection {
  /** The server's base URL, without a trailing slash. */
  url: string;
  /** Whether EC2_API_TOKEN is set (the token itself stays in the client's headers). */
  hasToken: boolean;
  api: Api;
}

/** The server from --url or EC2_API_URL, the token from EC2_API_TOKEN (never from an argument). */
export function connect(urlOption: string | undefined, env: NodeJS.ProcessEnv = process.env): Connection {
  const raw = urlOption ?? (env.EC2_API_URL?.trim() || DEFAULT_URL);
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw usageError(`"${raw}" is not a URL: pass --url http://HOST:PORT or set EC2_API_URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw usageError(`"${raw}" is not an http:// or https:// URL: pass --url http://HOST:PORT or set EC2_API_URL`);
  }
  if (parsed.username || parsed.password) {
    throw usageError('put no credentials in the URL: set EC2_API_TOKEN instead');
  }
  const url = parsed.href.replace(/\/+$/, '');
  const token = env.EC2_API_TOKEN?.trim();
  const api = createClient<paths>({
    baseUrl: url,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    fetch: reachable(url),
  });
  return { url, hasToken: Boolean(token), api };
}

/** Whether what is sent to this server crosses a network unencrypted. */
export function isPlainHttpToAnotherHost(conn: Pick<Connection, 'url'>): boolean {
  const { protocol, hostname } = new URL(conn.url);
  return protocol === 'http:' && !['localhost', '[::1]', '::1'].includes(hostname) && !/^127\./.test(hostname);
}

/** fetch, with "cannot connect" turned into a message that says what to do. */
function reachable(url: string) {
  return async (request: Request): Promise<Response> => {
    try {
      return await fetch(request);
    } catch (error) {
      if (request.signal.aborted) throw error;
      throw unreachable(url, error);
    }
  };
}

export function unreachable(url: string, error: unknown): CliError {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  let why = cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
  // fetch refuses a few well-known ports (the Fetch standard's "bad ports": 6000, 6665–6669, …).
  if (why === 'bad port') why = `fetch refuses port ${new URL(url).port}; run ec2-api on another port`;
  return new CliError(`cannot reach ec2-api at ${url} (${why}): start it (npm start) or point --url / EC2_API_URL at it`, EXIT.unreachable);
}

/** What a command says instead of the server's sentence, by status code. */
export type Wording = Partial<Record<number, string>>;

/** The wording of every route about one task (`/tasks/<id>…`) when there is no such task. */
export const taskWording = (id: string): Wording => ({ 404: `no task ${id}: list tasks with \`ec2-api tasks\`` });

/**
 * The data of a successful answer, or a CliError for a refusal: 400 is a
 * usage error, 401/403 and 503 mean the service cannot be used now, the
 * rest (404, 409, 502…) that it could not do what was asked.
 */
export async function expectOk<T>(
  conn: Connection,
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
  wording: Wording = {},
): Promise<{ data: T; response: Response }> {
  let answer;
  try {
    answer = await call;
  } catch (error) {
    // openapi-fetch parses JSON answers: a body that is not JSON comes from something else.
    if (error instanceof SyntaxError) {
      throw new CliError(`${conn.url} did not answer with JSON: check that --url / EC2_API_URL points at ec2-api`, EXIT.unreachable);
    }
    throw error;
  }
  const { data, error, response } = answer;
  if (response.ok) return { data: data as T, response };
  throw refusal(conn, response, error, wording);
}

export function refusal(conn: Connection, response: Response, body: unknown, wording: Wording = {}): CliError {
  const { status } = response;
  const said = typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string'
    ? (body as { error: string }).error
    : undefined;
  if (status === 401 || status === 403) {
    return new CliError(
      conn.hasToken
        ? `ec2-api at ${conn.url} refused the token in EC2_API_TOKEN: set it to one of the server's API_TOKENS`
        : `ec2-api at ${conn.url} needs a token: set EC2_API_TOKEN to one of the server's API_TOKENS`,
      EXIT.unreachable,
    );
  }
  if (said === undefined) {
    return new CliError(
      `${conn.url} answered ${status} ${response.statusText || ''}`.trimEnd() +
        ' without an ec2-api error message: check that --url / EC2_API_URL points at ec2-api',
      EXIT.unreachable,
    );
  }
  const message = wording[status] ?? said;
  if (status === 400) return new CliError(message, EXIT.usage);
  if (status === 503) {
    const after = retryAfterSeconds(response.headers.get('retry-after'));
    return new CliError(after === undefined ? message : `${message} (Retry-After: ${after} s)`, EXIT.unreachable);
  }
  return new CliError(message, EXIT.failed);
}

/** Retry-After as seconds: a number of seconds or an HTTP date. */
export function retryAfterSeconds(value: string | null): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}
