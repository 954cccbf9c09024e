// drain: first the fixed cost of a playbook run (one-task creates one after
// another on a fresh service), then for each N of --drain: N creates, each
// its own login, submitted at once to a fresh service and moto, timed to the
// first and the last result, with the runs, batches, instances and CPU.
import os from 'node:os';
import { batchSizes } from '../lib/db.mjs';
import { instancesPerTask, warmUp } from '../lib/ec2.mjs';
import { loginSource } from '../lib/load.mjs';
import { cpuTimes, startSampler } from '../lib/procfs.mjs';
import { UNMETERED_RATES, startMoto, startService } from '../lib/procs.mjs';
import { playbookRunsFromMetrics, profileArgs, submitCreate, waitRunsReaped, waitTerminal } from '../lib/service.mjs';
import { log, mb, median, round } from '../lib/stats.mjs';
import { TARGETS } from '../targets.mjs';

/** One-task runs timed for the fixed cost of a run: the first (resolves the image) and this many more. */
const FIXED_COST_WARM_RUNS = 3;

/**
 * The fixed cost of one playbook run: one-task runs on a fresh service, one
 * after another. The first resolves the image (the service then reuses it for
 * an hour), the later ones do not: both are reported.
 */
async function fixedCost(opts) {
  const moto = await startMoto();
  await warmUp(moto.url);
  const service = await startService(moto.url, { env: UNMETERED_RATES, nodeArgs: profileArgs(opts, 'drain-1task'), name: 'service-drain-1task' });
  const nextLogin = loginSource();
  const runs = [];
  try {
    for (let i = 0; i <= FIXED_COST_WARM_RUNS; i++) {
      const before = cpuTimes(service.pid);
      const t0 = Date.now();
      const id = await submitCreate(service.url, nextLogin());
      const { final } = await waitTerminal(service.url, [id], Date.now() + 120_000);
      const doc = final.get(id);
      if (!doc) throw new Error(`one-task run ${i + 1}: task ${id} not terminal after 120 s`);
      if (!(await waitRunsReaped(service))) throw new Error(`one-task run ${i + 1}: a playbook still runs 60 s after its task ended`);
      const after = cpuTimes(service.pid);
      runs.push({
        status: doc.status,
        error: doc.error ?? null,
        result_s: round((Date.parse(doc.finished_at) - t0) / 1000, 2),
        cpu_s: round(after.children - before.children, 2),
        service_cpu_s: round(after.self - before.self, 2),
      });
    }
  } finally {
    await service.stop();
    await moto.stop();
  }
  const warm = runs.slice(1);
  const out = {
    first: runs[0],
    later: warm,
    cpu_s_first: runs[0].cpu_s,
    cpu_s_later_median: round(median(warm.map((r) => r.cpu_s)), 2),
    result_s_later_median: round(median(warm.map((r) => r.result_s)), 2),
    all_succeeded: runs.every((r) => r.status === 'succeeded'),
  };
  log(`  one-task run: CPU ${out.cpu_s_first} s first (image lookup), ${out.cpu_s_later_median} s after (median of ${warm.length}); result in ${out.result_s_later_median} s`);
  return out;
}

/** drain: N creates (each its own login) at once on a running service, until all are terminal. */
async function phaseDrain(opts, n, fixed) {
  const moto = await startMoto();
  await warmUp(moto.url);
  const service = await startService(moto.url, { env: UNMETERED_RATES, nodeArgs: profileArgs(opts, `drain-${n}`), name: `service-drain-${n}` });
  const health = await fetch(`${service.url}/healthz`).then((r) => r.json());
  const metricsBefore = await playbookRunsFromMetrics(service.url);
  const nextLogin = loginSource();
  const logins = Array.from({ length: n }, () => nextLogin());
  const sampler = startSampler(service.pid, 100);
  const cpuBefore = cpuTimes(service.pid);
  const motoCpuBefore = cpuTimes(moto.child.pid);
  log(`drain ${n}: submitting ${n} creates at once (concurrency ${process.env.EC2_API_CONCURRENCY ?? 'default'}, batch ${process.env.EC2_API_BATCH_SIZE ?? 'default'})`);

  const t0 = Date.now();
  const ids = await Promise.all(logins.map((login) => submitCreate(service.url, login)));
  const submittedMs = Date.now() - t0;
  const { final, seenAllAt } = await waitTerminal(service.url, ids, t0 + Math.max(300, n * 3) * 1000);
  const reaped = await waitRunsReaped(service);
  const cpuAfter = cpuTimes(service.pid);
  const motoCpuAfter = cpuTimes(moto.child.pid);
  const samples = sampler.stop();
  const metricsAfter = await playbookRunsFromMetrics(service.url);

  const docs = [...final.values()];
  const at = (field) => docs.map((d) => Date.parse(d[field])).filter((t) => !Number.isNaN(t));
  const lastFinished = docs.length ? Math.max(...at('finished_at')) : NaN;
  const firstFinished = docs.length ? Math.min(...at('finished_at')) : NaN;
  const firstStarted = docs.length ? Math.min(...at('started_at')) : NaN;
  const counts = await instancesPerTask(moto.url, ids);
  await service.stop();
  await moto.stop();
  const batches = batchSizes(service.dbPath);

  // Runs in order of start; those started before the first one ended had no image cached (they look it up).
  const runs = [...samples.playbookRuns.values()].sort((a, b) => a.firstSeen - b.firstSeen);
  const firstEnd = runs.length ? Math.min(...runs.map((r) => r.endedBy ?? r.lastSeen)) : null;
  const coldRuns = runs.filter((r) => r.firstSeen <= firstEnd).length;
  const childCpu = cpuAfter.children - cpuBefore.children;
  // How many runs went side by side: the mean over the time any ran (sum of run times / span), and the most at one time.
  const spans = runs.map((r) => [r.firstSeen, r.endedBy ?? r.lastSeen]);
  const span = spans.length ? Math.max(...spans.map((x) => x[1])) - Math.min(...spans.map((x) => x[0])) : 0;
  const runsAtOnce = {
    mean: span > 0 ? round(spans.reduce((sum, [a, b]) => sum + (b - a), 0) / span, 2) : null,
    max: Math.max(0, ...spans.map(([a]) => spans.filter(([c, d]) => c <= a && a < d).length)),
  };
  const fixedCpu = fixed ? coldRuns * fixed.cpu_s_first + (runs.length - coldRuns) * fixed.cpu_s_later_median : null;
  const out = {
    tasks: n,
    concurrency: process.env.EC2_API_CONCURRENCY ?? 'service default',
    batch_size: process.env.EC2_API_BATCH_SIZE ?? 'service default',
    submit_s: round(submittedMs / 1000, 2),
    first_started_s: docs.length ? round((firstStarted - t0) / 1000, 2) : null,
    first_result_s: docs.length ? round((firstFinished - t0) / 1000, 2) : null,
    last_result_s: seenAllAt ? round((lastFinished - t0) / 1000, 2) : null,
    seconds_seen_by_poll: seenAllAt ? round((seenAllAt - t0) / 1000, 2) : null,
    completed: docs.length,
    succeeded: docs.filter((d) => d.status === 'succeeded').length,
    failed: docs.filter((d) => d.status !== 'succeeded').length,
    first_error: docs.find((d) => d.status !== 'succeeded')?.error ?? null,
    attempts_over_1: docs.filter((d) => (d.attempts ?? 1) > 1).length,
    instances: counts,
    playbook_runs: runs.length,
    batch_sizes: batches,
    playbook_runs_metrics: metricsBefore && metricsAfter ? metricsAfter.total - metricsBefore.total : null,
    playbook_runs_cold: coldRuns,
    runs_at_once: runsAtOnce,
    runs_reaped: reaped,
    runs_timeline: runs.map((r) => ({
      start_s: round((r.firstSeen - t0) / 1000, 1),
      end_s: round(((r.endedBy ?? r.lastSeen) - t0) / 1000, 1),
      cpu_s: r.cpu !== null ? round(r.cpu, 2) : null,
      ...(r.cpuShared ? { cpu_shared_s: round(r.cpuShared.cpu, 2), ended_with: r.cpuShared.runs } : {}),
    })),
    // Should equal cpu_s.playbooks_total: the part of it the timeline could attribute to runs.
    runs_cpu_attributed_s: round(runs.reduce((sum, r) => sum + (r.cpu ?? (r.cpuShared ? r.cpuShared.cpu / r.cpuShared.runs : 0)), 0), 2),
    playbook_wall_s_mean: runs.length ? round(runs.reduce((s, r) => s + ((r.endedBy ?? r.lastSeen) - r.firstSeen), 0) / runs.length / 1000, 2) : null,
    cpu_s: {
      service: round(cpuAfter.self - cpuBefore.self, 2),
      playbooks_total: round(childCpu, 2),
      per_playbook_run: runs.length ? round(childCpu / runs.length, 2) : null,
      per_task: round(childCpu / n, 3),
      fixed_cost_of_runs: round(fixedCpu, 2),
      per_task_beyond_fixed: fixed ? round((childCpu - fixedCpu) / n, 3) : null,
      moto: round(motoCpuAfter.self - motoCpuBefore.self, 2),
      wall_x_cores: round(((lastFinished - t0) / 1000) * (os.availableParallelism?.() ?? os.cpus().length), 1),
    },
    peak_rss_mb: { service: mb(samples.peakRss), descendants_total: mb(samples.peakDescendantRss), descendants_at_peak: samples.peakDescendantCount },
    max_descendant_processes: samples.peakDescendantProcesses,
    healthz_before: { queued: health.queued, running_playbooks: health.running_playbooks },
  };
  log(
    `  ${out.succeeded}/${n} succeeded; first result ${out.first_result_s} s, last ${out.last_result_s} s; ${out.playbook_runs} runs; ` +
      `ansible CPU ${out.cpu_s.playbooks_total} s (${out.cpu_s.per_task}/task, ${out.cpu_s.per_task_beyond_fixed} beyond fixed); ` +
      `instances: ${counts.tasksWithOne} with one, ${counts.missing} missing, ${counts.duplicates} doubled`,
  );
  return out;
}

/** The fixed cost of a run, then a drain of each size of --drain, each timed as its own part of the phase. */
async function phaseDrainAll(opts, timed) {
  const results = {};
  log('drain: the fixed cost of a run (one-task runs, one after another)');
  results.fixed_cost = await timed('drain 1-task runs', () => fixedCost(opts));
  for (const n of opts.drain) results[n] = await timed(`drain ${n}`, () => phaseDrain(opts, n, results.fixed_cost));
  return results;
}

function check(drain, add) {
  const f = drain.fixed_cost;
  add('drain 1-task run', 'ansible CPU s: first · later (median)', `${f.cpu_s_first} · ${f.cpu_s_later_median}`);
  add('drain 1-task run', 'result s (later, median)', f.result_s_later_median);
  add('drain 1-task run', 'succeeded', f.all_succeeded ? 'all' : 'NOT ALL', 'all', f.all_succeeded);
  const { firstResultS, lastResultS, cpuPerTaskBeyondFixedS } = TARGETS.drain;
  for (const [n, r] of Object.entries(drain)) {
    if (n === 'fixed_cost') continue;
    const label = `drain ${n}`;
    const first = firstResultS[n];
    const last = lastResultS[n];
    add(label, 'all 202s after (s)', r.submit_s);
    add(label, 'first result (s)', r.first_result_s ?? 'none', first?.text ?? '', first ? first.pass(r.first_result_s) : null);
    add(label, 'last result (s)', r.last_result_s ?? 'timed out', last?.text ?? '', last ? last.pass(r.last_result_s) : null);
    add(label, 'succeeded', `${r.succeeded}/${n}`, `${n}/${n}`, r.succeeded === Number(n));
    add(
      label,
      'instances: one per task / missing / doubled',
      `${r.instances.tasksWithOne} / ${r.instances.missing} / ${r.instances.duplicates}`,
      `${n} / 0 / 0`,
      r.instances.tasksWithOne === Number(n) && r.instances.missing === 0 && r.instances.duplicates === 0,
    );
    add(label, 'playbook runs: seen · /metrics · cold', `${r.playbook_runs} · ${r.playbook_runs_metrics ?? '?'} · ${r.playbook_runs_cold}`);
    add(label, 'tasks per batch', r.batch_sizes.join(' '));
    add(label, 'runs side by side: mean · most', `${r.runs_at_once.mean} · ${r.runs_at_once.max}`);
    add(label, 'ansible CPU s: total · per task', `${r.cpu_s.playbooks_total} · ${r.cpu_s.per_task}`);
    add(
      label,
      'ansible CPU s per task beyond fixed cost',
      r.cpu_s.per_task_beyond_fixed ?? 'n/a',
      cpuPerTaskBeyondFixedS.text,
      r.cpu_s.per_task_beyond_fixed === null ? null : cpuPerTaskBeyondFixedS.pass(r.cpu_s.per_task_beyond_fixed),
    );
    add(label, 'CPU s service + moto / wall × cores', `${r.cpu_s.service} + ${r.cpu_s.moto} / ${r.cpu_s.wall_x_cores}`);
    add(label, 'peak RSS service · descendants', `${r.peak_rss_mb.service} MB · ${r.peak_rss_mb.descendants_total} MB`);
  }
}

export default {
  name: 'drain',
  key: 'drain',
  idleMoto: false,
  /** Times its parts itself (the fixed cost, then each drain). */
  timesItself: true,
  run: phaseDrainAll,
  check,
};
