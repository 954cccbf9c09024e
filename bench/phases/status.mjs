// status: GET /status/<id> of one task, 64 connections, nothing else running.
import { bad, badText, cannon, summarizeCannon } from '../lib/cannon.mjs';
import { pausedService, submitCreate } from '../lib/service.mjs';
import { log } from '../lib/stats.mjs';
import { TARGETS } from '../targets.mjs';

/** status: GET /status/<id> of one task, 64 connections, nothing else running. */
async function phaseStatus(opts) {
  const service = await pausedService(opts, 'status');
  const id = await submitCreate(service.url);
  log(`status: 64 connections × ${opts.duration} s on /status/${id}`);
  const result = await cannon({ url: `${service.url}/status/${id}`, connections: 64, duration: opts.duration });
  await service.stop();
  return { task_id: id, ...summarizeCannon(result) };
}

function check(status, add) {
  add('status', '64 conn req/s', status.req_per_s, TARGETS.status.reqPerS.text, TARGETS.status.reqPerS.pass(status.req_per_s));
  add('status', '64 conn p50 · p99', `${status.latency_ms.p50} ms · ${status.latency_ms.p99} ms`, `p99 ${TARGETS.status.p99Ms.text}`, TARGETS.status.p99Ms.pass(status.latency_ms.p99));
  add('status', 'non-2xx · errors', badText(status), '0 · 0', bad(status) === 0);
}

export default {
  name: 'status',
  key: 'status',
  idleMoto: true,
  run: phaseStatus,
  check,
};
