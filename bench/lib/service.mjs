// The service as the phases drive it: the README's login, submitting creates,
// reading tasks back, waiting for them and for their playbook runs, the CPU
// the service spends meanwhile, and the one idle moto that the phases that
// launch nothing share.
import path from 'node:path';
import { allStats, descendants, readCmdline, threadSplit, threadTimes } from './procfs.mjs';
import { projectRoot, sleep, startMoto, startService } from './procs.mjs';
import { round } from './stats.mjs';

export const RESULTS_DIR = path.join(projectRoot, 'bench', 'results');
export const PROFILE_DIR = path.join(RESULTS_DIR, 'profiles');

/** The README's login: the same body every time ("fixed body"). */
export const FIXED_LOGIN = { username: 'suitepad', password: 'suitepad' };
export const BODY = JSON.stringify(FIXED_LOGIN);
export const JSON_HEADERS = { 'content-type': 'application/json' };

/** node flags for a service started by the phase `name`: a CPU profile with --profile. */
export const profileArgs = (opts, name) =>
  opts.profile ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR, '--cpu-prof-name', `${name}.cpuprofile`] : [];

export async function submitCreate(url, login = FIXED_LOGIN) {
  const response = await fetch(`${url}/create-async`, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(login) });
  const body = await response.json().catch(() => ({}));
  if (response.status !== 202) throw new Error(`POST /create-async → ${response.status} ${JSON.stringify(body)}`);
  return body.task_id;
}

export async function getStatus(url, id) {
  const response = await fetch(`${url}/status/${id}`);
  if (!response.ok) throw new Error(`GET /status/${id} → ${response.status}`);
  return response.json();
}

/** Sum of `ec2_api_playbook_duration_seconds_count` samples from GET /metrics, by label set. */
export async function playbookRunsFromMetrics(url) {
  try {
    const text = await fetch(`${url}/metrics`).then((r) => r.text());
    const byLabels = {};
    let total = 0;
    for (const m of text.matchAll(/^ec2_api_playbook_duration_seconds_count(\{[^}]*\})?\s+([0-9.e+]+)$/gm)) {
      const n = Number(m[2]);
      total += n;
      byLabels[m[1] ?? ''] = n;
    }
    return { total, byLabels };
  } catch {
    return null;
  }
}

/** ansible-playbook processes among the service's children now. */
export function livePlaybooks(servicePid) {
  return descendants(servicePid, allStats()).filter(
    (s) => s.ppid === servicePid && s.state !== 'Z' && readCmdline(s.pid).some((arg) => arg.endsWith('ansible-playbook')),
  ).length;
}

/** Waits until the service has no playbook running (so their CPU is in its cutime); false on timeout. */
export async function waitRunsReaped(service, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const health = await fetch(`${service.url}/healthz`).then((r) => r.json()).catch(() => null);
    if (health && health.running_playbooks === 0 && health.queued === 0 && livePlaybooks(service.pid) === 0) return true;
    await sleep(50);
  }
  return false;
}

/**
 * Polls /status of `ids` in order (about one request per 100 ms tick, moving
 * past ended tasks at once: `finished_at` is set when a task ends) until all
 * have ended or the deadline.
 */
export async function waitTerminal(url, ids, deadline) {
  const final = new Map();
  let next = 0;
  while (next < ids.length && Date.now() <= deadline) {
    const doc = await getStatus(url, ids[next]);
    if (doc.finished_at !== null) {
      final.set(ids[next], doc);
      next++;
      continue;
    }
    await sleep(100);
  }
  return { final, seenAllAt: next === ids.length ? Date.now() : null };
}

/** Runs `fn` (a load) and says where the service's CPU went meanwhile, by thread, and the bench's own. */
export async function withThreadSplit(pid, fn) {
  const before = threadTimes(pid);
  const benchBefore = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const wall = (performance.now() - t0) / 1000;
  const bench = process.cpuUsage(benchBefore);
  const split = threadSplit(pid, before, threadTimes(pid), wall);
  split.bench_process_cores = round((bench.user + bench.system) / 1e6 / wall, 2);
  return { value, split };
}

// Moto for the phases that launch nothing (accept, status, memory): one, shared.
let sharedMoto = null;
export async function idleMoto() {
  sharedMoto ??= await startMoto();
  return sharedMoto;
}

/** Stops the shared moto, if one runs (before the phases that start their own). */
export async function stopIdleMoto() {
  await sharedMoto?.stop();
  sharedMoto = null;
}

/**
 * A paused service (it stores tasks and runs none) on the shared idle moto,
 * with room in its queue for every task a load sends; `name` names its
 * process and its CPU profile.
 */
export async function pausedService(opts, name, env = {}) {
  const moto = await idleMoto();
  return startService(moto.url, {
    env: { EC2_API_PAUSED: '1', EC2_API_MAX_QUEUED: '1000000', ...env },
    nodeArgs: profileArgs(opts, name),
    name: `service-${name}`,
  });
}
