// autocannon runs, each registered so that Ctrl-C can stop the load first.
import autocannon from 'autocannon';
import { round } from './stats.mjs';

const live = new Set();

export function cannon(options) {
  return new Promise((resolve, reject) => {
    const instance = autocannon(options, (error, result) => {
      live.delete(instance);
      if (error) reject(error);
      else resolve(result);
    });
    live.add(instance);
  });
}

/** Stops every load still running (Ctrl-C). */
export function stopCannons() {
  for (const instance of live) instance.stop();
}

export function summarizeCannon(r) {
  return {
    connections: r.connections,
    duration_s: r.duration,
    requests: r.requests.total,
    req_per_s: round(r.requests.average, 0),
    latency_ms: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: round(r.latency.average, 2) },
    '2xx': r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    status_codes: Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([code, { count }]) => [code, count])),
  };
}

/** Non-2xx answers and errors of a summarized run: the text for the table, and whether there were none. */
export const badText = (r) => `${r.non2xx} · ${r.errors}${r.timeouts ? ` (${r.timeouts} timed out)` : ''}`;
export const bad = (r) => r.non2xx + r.errors;
