// Server-Sent Events read with fetch, because EventSource cannot send an
// Authorization header. The text/event-stream format is parsed by
// eventsource-parser (as in the command-line client); this reconnects after a
// drop with Last-Event-ID so nothing is missed, and notices a silent
// connection (the server sends a comment every 15 s) and replaces it.
import { authHeaders, errorOf, refused, token, type ApiError } from './api.js';
import type { StreamEvent } from '../api/lifecycle.js';
import { createParser, type EventSourceMessage } from './vendor/eventsource-parser.js';

export type SseMessage = EventSourceMessage;

export type StreamState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface FollowOptions {
  /** Where to connect; a function is asked again at every (re)connection. */
  url: string | (() => string);
  /** Resume after this event (sent as Last-Event-ID). */
  lastEventId?: string | null;
  onMessage(message: SseMessage): void;
  onState?(state: StreamState, detail?: string): void;
  /** A refusal that retrying will not fix (404, 400): the stream stops. */
  onFail?(error: ApiError): void;
  /** True for the message after which the stream is done (e.g. `end`). */
  isLast?(message: SseMessage): boolean;
}

export interface Follower {
  close(): void;
  readonly lastEventId: string | null;
}

/** Nothing at all for this long (heartbeats included) means the connection is dead. */
const SILENCE_MS = 40_000;
const MAX_DELAY_MS = 30_000;

export function follow(options: FollowOptions): Follower {
  let lastEventId = options.lastEventId ?? null;
  let closed = false;
  let controller: AbortController | null = null;
  let retryMs = 2_000;
  let failures = 0;
  const state = (value: StreamState, detail?: string) => options.onState?.(value, detail);

  const run = async () => {
    while (!closed) {
      controller = new AbortController();
      let silence: number | undefined;
      const alive = () => {
        window.clearTimeout(silence);
        silence = window.setTimeout(() => controller?.abort(), SILENCE_MS);
      };
      let finished = false;
      let detail = 'the connection was lost';
      try {
        state(failures === 0 ? 'connecting' : 'reconnecting');
        alive();
        const hadToken = Boolean(token.get());
        const url = typeof options.url === 'function' ? options.url() : options.url;
        const response = await fetch(url, {
          headers: { accept: 'text/event-stream', ...authHeaders(), ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
          signal: controller.signal,
          cache: 'no-store',
          credentials: 'omit',
        });
        if (response.status === 401) {
          await refused(response, hadToken);
          closed = true;
          break;
        }
        if (!response.ok || !response.body) {
          const error = await errorOf(response);
          if (response.status >= 400 && response.status < 500 && response.status !== 429) {
            options.onFail?.(error);
            closed = true;
            break;
          }
          throw error;
        }
        state('open');
        failures = 0;
        finished = await read(response.body, alive, (message) => {
          if (message.id) lastEventId = message.id;
          options.onMessage(message);
          if (message.event === ('stopping' satisfies StreamEvent['type'])) detail = 'the service is restarting';
          return options.isLast?.(message) ?? false;
        }, (ms) => (retryMs = ms));
      } catch (error) {
        if (closed) break;
        if ((error as Error).message && (error as Error).name !== 'AbortError' && (error as Error).name !== 'TypeError') {
          detail = (error as Error).message;
        }
      } finally {
        window.clearTimeout(silence);
      }
      if (finished || closed) break;
      failures++;
      state('reconnecting', detail);
      const delay = Math.min(MAX_DELAY_MS, retryMs * Math.min(2 ** (failures - 1), 8));
      await new Promise((resolve) => window.setTimeout(resolve, delay));
    }
    state('closed');
  };
  void run();

  return {
    close() {
      closed = true;
      controller?.abort();
    },
    get lastEventId() {
      return lastEventId;
    },
  };
}

/**
 * Reads one response to its end. Resolves true when `dispatch` said the last
 * message arrived, false when the server closed the stream.
 */
async function read(
  body: ReadableStream<Uint8Array>,
  alive: () => void,
  dispatch: (message: SseMessage) => boolean,
  setRetry: (ms: number) => void,
): Promise<boolean> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let last = false;
  const parser = createParser({ onEvent: (message) => (last ||= dispatch(message)), onRetry: setRetry });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      alive();
      parser.feed(decoder.decode(value, { stream: true }));
      if (last) return true;
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}
