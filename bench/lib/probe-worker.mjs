// A paced GET probe, run in a worker thread (its own event loop, so the load
// generator in the bench's main thread does not delay its timers or replies).
//
// `connections` lanes, each on its own keep-alive socket, each sending one
// request every `intervalMs` (lanes offset evenly), like a few clients
// polling. A lane never sends two at once: while a reply is late, the slots
// that pass are not sent but counted (`lateSlots`), so a stall of the
// service shows as one slow reply plus the polls it held up.
// Recorded per request: `ms`, from the write to the end of the reply. Each
// lane first sends a few requests that are not recorded (connection, JIT).
import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';

const { url, connections, intervalMs, durationMs } = workerData;

const WARM_UP_REQUESTS = 5;
const ms = [];
let lateSlots = 0;
const statusCodes = {};
let errors = 0;

function get(agent) {
  return new Promise((resolve) => {
    const request = http.get(url, { agent }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode));
      response.on('error', () => resolve(null));
    });
    request.setTimeout(10_000, () => request.destroy(new Error('timeout')));
    request.on('error', () => resolve(null));
  });
}

async function lane(i, agent, start, end) {
  let due = start + (intervalMs * i) / connections;
  while (due < end) {
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const sent = performance.now();
    const code = await get(agent);
    const done = performance.now();
    if (code === null) errors++;
    else {
      statusCodes[code] = (statusCodes[code] ?? 0) + 1;
      ms.push(done - sent);
    }
    due += intervalMs;
    if (due < done) {
      const missed = Math.ceil((done - due) / intervalMs);
      lateSlots += missed;
      due += missed * intervalMs;
    }
  }
}

const agents = Array.from({ length: connections }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
for (let i = 0; i < WARM_UP_REQUESTS; i++) await Promise.all(agents.map((agent) => get(agent)));
const start = performance.now();
await Promise.all(agents.map((agent, i) => lane(i, agent, start, start + durationMs)));
for (const agent of agents) agent.destroy();
parentPort.postMessage({ seconds: (performance.now() - start) / 1000, ms, lateSlots, statusCodes, errors });
