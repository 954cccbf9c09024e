// Following one task's Server-Sent Events (GET /tasks/<id>/events) to its
// `end` event: parsed with eventsource-parser, resumed with Last-Event-ID
// after a `stopping` event (the service restarts), a dropped connection or a
// silent one (the server sends a comment every 15 s).
import { createParser } from 'eventsource-parser';
import type { Task } from '../api/documents.js';
import { isTaskEvent, streamEvent, type TaskEvent } from '../api/lifecycle.js';
import { type Connection, refusal, taskWording } from './client.js';
import { CliError, EXIT } from './errors.js';

export type { TaskEvent } from '../api/lifecycle.js';

export interface FollowOptions {
  /** Aborting stops following (Ctrl-C); the returned promise then rejects with the abort reason. */
  signal: AbortSignal;
  onEvent(event: TaskEvent): void;
  /** Said when the stream is interrupted and about to be resumed. */
  onNotice?(message: string): void;
  /** Silence after which the connection counts as lost (the server's heartbeat is 15 s). */
  idleMs?: number;
  /** How long to keep trying to reconnect before giving up. */
  reconnectForMs?: number;
}

/** Resolves with the task's final document (the `end` event). */
export async function followTask(conn: Connection, id: string, options: FollowOptions): Promise<Task> {
  const { signal, idleMs = 45_000, reconnectForMs = 120_000 } = options;
  let lastEventId: string | undefined;
  let retryMs = 1_000;
  let lostSince: number | undefined;

  for (;;) {
    signal.throwIfAborted();
    const outcome = await readOnce(conn, id, lastEventId, options, idleMs, (eventId) => (lastEventId = eventId), (ms) => (retryMs = ms));
    if (outcome.kind === 'end') return outcome.task;
    // Interrupted: resume where we were, for a while.
    if (outcome.kind === 'unreachable') lostSince ??= Date.now();
    else lostSince = Date.now(); // it was connected until now
    if (Date.now() - lostSince > reconnectForMs) {
      throw new CliError(
        `lost the event stream of task ${id} (${outcome.why}); the task goes on: follow it with \`ec2-api status ${id}\``,
        EXIT.unreachable,
      );
    }
    options.onNotice?.(`${outcome.why}; reconnecting…`);
    await sleep(outcome.kind === 'stopping' ? Math.max(retryMs, 1_000) : Math.min(retryMs, 5_000), signal);
  }
}

type Outcome =
  | { kind: 'end'; task: Task }
  | { kind: 'stopping'; why: string }
  | { kind: 'connected-then-lost'; why: string }
  | { kind: 'unreachable'; why: string };

async function readOnce(
  conn: Connection,
  id: string,
  lastEventId: string | undefined,
  options: FollowOptions,
  idleMs: number,
  seen: (eventId: string) => void,
  retry: (ms: number) => void,
): Promise<Outcome> {
  const local = new AbortController();
  const abort = () => local.abort(options.signal.reason);
  options.signal.addEventListener('abort', abort, { once: true });
  let idle: NodeJS.Timeout | undefined;
  const resetIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(() => local.abort(new Error('idle')), idleMs);
  };
  try {
    let result;
    try {
      result = await conn.api.GET('/tasks/{id}/events', {
        params: { path: { id }, header: lastEventId === undefined ? {} : { 'last-event-id': lastEventId } },
        parseAs: 'stream',
        signal: local.signal,
      });
    } catch (error) {
      options.signal.throwIfAborted();
      // A first connection that fails is the user's problem to fix; a reconnection may be a restart.
      if (lastEventId === undefined) throw error;
      return { kind: 'unreachable', why: error instanceof Error ? error.message : String(error) };
    }
    const { data: body, error, response } = result;
    if (!response.ok || !body) {
      const failure = refusal(conn, response, error, taskWording(id));
      if (response.status === 503 && lastEventId !== undefined) return { kind: 'unreachable', why: failure.message };
      throw failure;
    }

    let final: Task | undefined;
    let stopping = false;
    const parser = createParser({
      onEvent(message) {
        if (message.id) seen(message.id);
        const event = streamEvent(message);
        if (event?.type === 'end') final = event.data;
        else if (event?.type === 'stopping') stopping = true;
        else if (isTaskEvent(event)) options.onEvent(event);
      },
      onRetry: retry,
    });
    const decoder = new TextDecoder();
    const reader = body.getReader();
    resetIdle();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        resetIdle();
        parser.feed(decoder.decode(value, { stream: true }));
        if (final) return { kind: 'end', task: final };
      }
    } catch {
      options.signal.throwIfAborted();
      const silent = local.signal.reason instanceof Error && local.signal.reason.message === 'idle';
      return { kind: 'connected-then-lost', why: silent ? 'the event stream went silent' : 'the event stream broke' };
    }
    if (final) return { kind: 'end', task: final };
    if (stopping) return { kind: 'stopping', why: 'the service is restarting' };
    return { kind: 'connected-then-lost', why: 'the event stream closed early' };
  } finally {
    clearTimeout(idle);
    options.signal.removeEventListener('abort', abort);
    if (!local.signal.aborted) local.abort();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', stop);
      resolve();
    }, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', stop, { once: true });
  });
}
