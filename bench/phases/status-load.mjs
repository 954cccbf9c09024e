// status-load: the paced status probe (bench/lib/load.mjs) alone, then the
// same probe while distinct-password creates arrive at 16 connections.
import { bad, cannon, summarizeCannon } from '../lib/cannon.mjs';
import { distinctCreateRequests, loginSource, probe } from '../lib/load.mjs';
import { threadSplit, threadTimes } from '../lib/procfs.mjs';
import { sleep } from '../lib/procs.mjs';
import { pausedService, submitCreate } from '../lib/service.mjs';
import { cores, log } from '../lib/stats.mjs';
import { TARGETS } from '../targets.mjs';

/** The status probe run beside the distinct-password creates: 4 connections, one request each every 20 ms. */
const PROBE = { connections: 4, intervalMs: 20 };

/**
 * status-load: the paced status probe alone (baseline), then the same probe
 * while distinct-password creates arrive at 16 connections.
 */
async function phaseStatusLoad(opts) {
  const service = await pausedService(opts, 'status-load');
  const nextLogin = loginSource();
  const id = await submitCreate(service.url, nextLogin());
  const url = `${service.url}/status/${id}`;
  const probeMs = Math.max(1000, opts.duration * 1000 - 2000);
  log(`status-load: probe alone, ${PROBE.connections} connections × one request per ${PROBE.intervalMs} ms, ${Math.min(probeMs, 3000) / 1000} s`);
  const alone = await probe(url, { ...PROBE, durationMs: Math.min(probeMs, 3000) });
  log(`status-load: the same probe while distinct-password creates arrive (16 connections × ${opts.duration} s)`);
  const accepted = [];
  const threadsBefore = threadTimes(service.pid);
  const loadStarted = performance.now();
  const load = cannon({
    url: service.url,
    connections: 16,
    duration: opts.duration,
    requests: distinctCreateRequests(nextLogin, { accepted, sample: new Map() }),
  });
  // The probe starts once the load runs, and stops before it does.
  await sleep(Math.min(1000, (opts.duration * 1000 - probeMs) / 2));
  const during = await probe(url, { ...PROBE, durationMs: probeMs });
  const creates = summarizeCannon(await load);
  const split = threadSplit(service.pid, threadsBefore, threadTimes(service.pid), (performance.now() - loadStarted) / 1000);
  await service.stop();
  log(`  status p50 ${during.latency_ms.p50} ms, p99 ${during.latency_ms.p99} ms, max ${during.latency_ms.max} ms; creates ${creates.req_per_s} req/s`);
  return { task_id: id, probe_alone: alone, probe_during: during, creates, service_cpu: split };
}

function check(statusLoad, add) {
  const { probe_alone: alone, probe_during: during, creates } = statusLoad;
  const label = 'status under load';
  const ms = (l) => `${l.p50} · ${l.p99} · ${l.max} ms`;
  add(label, `probe alone p50 · p99 · max (${alone.rate_per_s}/s)`, ms(alone.latency_ms));
  add(label, 'with distinct creates: p50 · p99 · max', ms(during.latency_ms), `p99 ${TARGETS.statusLoad.p99Ms.text}`, TARGETS.statusLoad.p99Ms.pass(during.latency_ms.p99));
  add(label, '  status requests · polls held up · bad', `${during.requests} · ${during.late_slots} · ${during.non2xx + during.errors}`, '0 bad', during.non2xx + during.errors === 0);
  add(label, '  creates meanwhile: req/s · p99 · bad', `${creates.req_per_s} · ${creates.latency_ms.p99} ms · ${bad(creates)}`);
  add(label, '  service CPU, cores: main · hash thread · rest', cores(statusLoad.service_cpu));
}

export default {
  name: 'status-load',
  key: 'status_load',
  idleMoto: true,
  run: phaseStatusLoad,
  check,
};
