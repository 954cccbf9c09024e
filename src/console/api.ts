// Calls to the service's API. With API_TOKENS set on the server, every call
// carries `Authorization: Bearer <token>`; the token lives in sessionStorage
// (this browser tab's session only), never in a cookie or a URL.

const TOKEN_KEY = 'ec2-api.token';

export const token = {
  get(): string | null {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  set(value: string): void {
    sessionStorage.setItem(TOKEN_KEY, value);
  },
  clear(): void {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // nothing stored
    }
  },
};

/** An answer that was not a success: the server's sentence, and which field when it says. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
    readonly body?: unknown,
    readonly headers?: Headers,
  ) {
    super(message);
  }
}

type AuthListener = (message: string, hadToken: boolean) => void;
let authListener: AuthListener = () => undefined;

/** Who is told when the server answers 401 (main.ts shows the token prompt). */
export function onAuthRequired(listener: AuthListener): void {
  authListener = listener;
}

export function authHeaders(override?: string): Record<string, string> {
  const value = override ?? token.get();
  return value ? { authorization: `Bearer ${value}` } : {};
}

/** Reads an error answer: `{"error": "<sentence>", "field"?}` as the API promises, or whatever came. */
export async function errorOf(response: Response): Promise<ApiError> {
  let message = `the service answered ${response.status} ${response.statusText}`.trim();
  let field: string | undefined;
  let body: unknown;
  try {
    const text = await response.text();
    try {
      body = JSON.parse(text);
      const parsed = body as { error?: unknown; field?: unknown };
      if (typeof parsed.error === 'string') message = parsed.error;
      if (typeof parsed.field === 'string') field = parsed.field;
    } catch {
      if (text.trim()) message = text.trim().slice(0, 300);
    }
  } catch {
    // no body
  }
  return new ApiError(response.status, message, field, body, response.headers);
}

/** Tells the prompt about a 401 and turns it into an error. */
export async function refused(response: Response, hadToken: boolean): Promise<ApiError> {
  const error = await errorOf(response);
  authListener(error.message, hadToken);
  return error;
}

export interface Answer<T> {
  status: number;
  body: T;
  headers: Headers;
}

export interface CallOptions {
  method?: string;
  json?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Statuses that are answers rather than errors (e.g. 202 and 409 of a cancel). */
  accept?: number[];
  /** Read the body as text instead of JSON. */
  text?: boolean;
  /** Use this token instead of the stored one (checking a token the user typed). */
  token?: string;
  /** Do not show the token prompt on 401 (the prompt itself checking a token). */
  quiet401?: boolean;
}

export async function api<T>(path: string, options: CallOptions = {}): Promise<Answer<T>> {
  const headers: Record<string, string> = { accept: options.text ? 'text/plain' : 'application/json', ...authHeaders(options.token), ...options.headers };
  if (options.json !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, {
      method: options.method ?? 'GET',
      headers,
      body: options.json === undefined ? undefined : JSON.stringify(options.json),
      signal: options.signal,
      cache: 'no-store',
      credentials: 'omit', // nothing rides on cookies
    });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new ApiError(0, 'the service did not answer: is it running, and is this machine on its network?');
  }
  if (response.status === 401) {
    throw options.quiet401 ? await errorOf(response) : await refused(response, Boolean(options.token ?? token.get()));
  }
  if (!response.ok && !options.accept?.includes(response.status)) throw await errorOf(response);
  const body = (options.text ? await response.text() : await response.json()) as T;
  return { status: response.status, body, headers: response.headers };
}
