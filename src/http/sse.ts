// Server-Sent Events on a raw response, with the three things a long-lived
// stream needs to be safe to offer: a heartbeat (proxies drop silent
// connections), a cap on what a slow reader may make us buffer (it is cut off
// and resumes with Last-Event-ID), and an end at shutdown with a last
// `stopping` event (app.close() would otherwise wait for it forever).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { sendError } from './errors.js';

/** Comment lines keep the connection busy for proxies and load balancers. */
const HEARTBEAT_MS = 15_000;
/** Bytes a client may leave unread before it is cut off. */
export const MAX_BUFFERED = 1024 * 1024;
/** Streams open at once; more get a 503 that says to retry. */
export const MAX_STREAMS = 1_000;
/** What a client is told to wait before reconnecting after `stopping`. */
const RECONNECT_MS = 5_000;

export interface SseMessage {
  /** The event id, sent as `id:`: what the client sends back as Last-Event-ID. */
  id?: number;
  event: string;
  data: unknown;
}

export class SseStream {
  private ended = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly closeListeners: (() => void)[] = [];

  constructor(private readonly reply: FastifyReply) {
    const res = reply.raw;
    this.heartbeat = setInterval(() => this.write(': keep-alive\n\n'), HEARTBEAT_MS);
    res.on('close', () => this.finish());
  }

  get closed(): boolean {
    return this.ended;
  }

  send({ id, event, data }: SseMessage): void {
    this.write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** Resolves once the client has read what was written (or the stream closed). */
  drained(): Promise<void> {
    const res = this.reply.raw;
    if (this.ended || res.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }

  onClose(listener: () => void): void {
    if (this.ended) listener();
    else this.closeListeners.push(listener);
  }

  /** Ends the stream after what was written. */
  end(): void {
    if (this.ended) return;
    this.reply.raw.end();
    this.finish();
  }

  /** The service is stopping: say so, and when to come back, then end. */
  stop(): void {
    if (this.ended) return;
    this.write(`retry: ${RECONNECT_MS}\n`);
    this.send({
      event: 'stopping',
      data: { message: 'the service is shutting down; reconnect in a few seconds with Last-Event-ID to resume where you were' },
    });
    this.end();
  }

  private write(chunk: string): void {
    if (this.ended) return;
    const res = this.reply.raw;
    res.write(chunk);
    // A client that does not read would make us hold everything for it.
    if (res.writableLength > MAX_BUFFERED) {
      res.destroy();
      this.finish();
    }
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.heartbeat);
    for (const listener of this.closeListeners.splice(0)) listener();
  }
}

/** Every open stream of one app, so that they can be ended at shutdown. */
export class EventStreams {
  private readonly open = new Set<SseStream>();
  /** After stopAll(): the service is stopping, and a client reconnecting now would hold the close. */
  private stopping = false;

  get size(): number {
    return this.open.size;
  }

  /** Starts an SSE response, or answers 503 (and returns null) when too many are open or the service is stopping. */
  start(request: FastifyRequest, reply: FastifyReply): SseStream | null {
    if (this.stopping) {
      reply.header('Retry-After', String(RECONNECT_MS / 1000));
      void sendError(reply, 503, 'the service is shutting down; reconnect in a few seconds with Last-Event-ID');
      return null;
    }
    if (this.open.size >= MAX_STREAMS) {
      reply.header('Retry-After', '30');
      void sendError(reply, 503, `${MAX_STREAMS} event streams are open already; retry in a while`);
      return null;
    }
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // proxies must not hold events back
      'x-request-id': String(request.id),
    });
    // Headers now, not with the first event: the client sees the stream open.
    reply.raw.flushHeaders();
    const stream = new SseStream(reply);
    this.open.add(stream);
    stream.onClose(() => this.open.delete(stream));
    return stream;
  }

  stopAll(): void {
    this.stopping = true;
    for (const stream of [...this.open]) stream.stop();
  }
}
