// Serves the service's Pacer to the module processes of every playbook run,
// over a Unix socket in a private (0700) directory whose path each run gets
// in EC2_API_PACER_SOCKET (modules run by the local connection inherit the
// controller's environment). One JSON object a line each way:
//   {"op": "take", "kind": "run_instances", "n": 1, "endpoint": …, "region": …, "account": …}
//     → {"wait": 0.5}   (seconds to wait before sending the call)
//   {"op": "throttled", "kind": …, "endpoint": …, "region": …, "account": …} → {"ok": true}
//   anything else → {"error": "…"}
// The protocol's client is plugins/module_utils/ec2_api_pace.py.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CALL_KINDS, PacerFullError, type BucketKey, type CallKind, type CallPacer, type Pacer } from './pacer.js';
import { RATE_SETTINGS } from '../config.js';

/** The environment variable that names the socket, for the modules. */
export const PACER_SOCKET_ENV = 'EC2_API_PACER_SOCKET';
/** A request is a few hundred bytes; a longer line is a mistake. */
const MAX_LINE = 4_096;
const MAX_FIELD = 512;

export interface PacerServer {
  pacer: CallPacer;
  socketPath: string;
  /** What every playbook run's environment needs: the socket, and the same limits for a module that cannot reach it. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** `pacer`: this process's buckets (Pacer), or the ones nodes share in PostgreSQL (SharedPacer, pg-pacer.ts). */
export async function startPacerServer(pacer: CallPacer): Promise<PacerServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ec2-api-pacer-'));
  fs.chmodSync(dir, 0o700);
  const socketPath = path.join(dir, 'pacer.sock');
  const connections = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = '';
    // Answers in the order of the requests, though shared buckets answer asynchronously.
    let answering: Promise<unknown> = Promise.resolve();
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        answering = answering
          .then(() => respond(pacer, line))
          .then(
            (reply) => socket.write(`${JSON.stringify(reply)}\n`),
            // Not expected (a shared pacer answers from memory when the database does not): the module then paces itself.
            (error: unknown) => socket.write(`${JSON.stringify({ error: `the pacer failed: ${(error as Error).message}` })}\n`),
          );
      }
      if (buffered.length > MAX_LINE) socket.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  fs.chmodSync(socketPath, 0o600);

  const env: Record<string, string> = { [PACER_SOCKET_ENV]: socketPath };
  for (const kind of CALL_KINDS) {
    const { capacity, refillPerSecond } = pacer.limits[kind];
    env[RATE_SETTINGS[kind].name] = `${capacity}/${refillPerSecond}`;
  }

  return {
    pacer,
    socketPath,
    env,
    async close() {
      for (const socket of connections) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

type Answer = { wait: number } | { ok: true } | { error: string };
type Request = { op: 'take' | 'throttled'; key: BucketKey; kind: CallKind; n: number };

/** The answer to one request line, from any pacer: the socket's. */
export async function respond(pacer: CallPacer, line: string): Promise<Answer> {
  const request = parse(line);
  if ('error' in request) return request;
  try {
    if (request.op === 'take') return { wait: await pacer.take(request.key, request.kind, request.n) };
    await pacer.throttled(request.key, request.kind);
    return { ok: true };
  } catch (error) {
    if (error instanceof PacerFullError) return { error: error.message };
    throw error;
  }
}

/** The answer to one request line from this process's buckets, at once. */
export function answer(pacer: Pacer, line: string): Answer {
  const request = parse(line);
  if ('error' in request) return request;
  try {
    if (request.op === 'take') return { wait: pacer.take(request.key, request.kind, request.n) };
    pacer.throttled(request.key, request.kind);
    return { ok: true };
  } catch (error) {
    if (error instanceof PacerFullError) return { error: error.message };
    throw error;
  }
}

/** A request line, checked. */
function parse(line: string): Request | { error: string } {
  let request: Record<string, unknown>;
  try {
    const parsed = JSON.parse(line) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return { error: 'a request is a JSON object' };
    request = parsed as Record<string, unknown>;
  } catch {
    return { error: 'a request is one line of JSON' };
  }
  const kind = request.kind as CallKind;
  if (!CALL_KINDS.includes(kind)) return { error: `kind must be one of ${CALL_KINDS.join(', ')}` };
  const key: Partial<BucketKey> = {};
  for (const field of ['endpoint', 'region', 'account'] as const) {
    const value = request[field];
    if (typeof value !== 'string' || value.length > MAX_FIELD) return { error: `${field} must be a string of at most ${MAX_FIELD} characters` };
    key[field] = value;
  }
  const n = request.n ?? 1;
  if (request.op === 'take' && (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1_000)) {
    return { error: 'n must be a whole number from 1 to 1000' };
  }
  if (request.op !== 'take' && request.op !== 'throttled') return { error: 'op must be take or throttled' };
  return { op: request.op, key: key as BucketKey, kind, n: n as number };
}
