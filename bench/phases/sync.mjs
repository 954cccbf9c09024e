// sync: POST /create against the same playbook run by hand (as
// playbooks/README.md says: the variables in a 0600 file), alternating, after
// one untimed warm-up of each; medians.
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { instanceIdsOfTask, warmUp } from '../lib/ec2.mjs';
import { cpuTimes } from '../lib/procfs.mjs';
import { fromVenv, runToEnd, safeEnv, startMoto, startService, tempDir } from '../lib/procs.mjs';
import { BODY, FIXED_LOGIN, JSON_HEADERS, getStatus, profileArgs, waitRunsReaped } from '../lib/service.mjs';
import { log, median, round } from '../lib/stats.mjs';
import { TARGETS } from '../targets.mjs';

/** sync: POST /create wall time vs the same playbook run by hand, alternating. */
async function phaseSync(opts) {
  const moto = await startMoto();
  await warmUp(moto.url);
  const service = await startService(moto.url, { nodeArgs: profileArgs(opts, 'sync'), name: 'service-sync' });
  const hash = execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: `${FIXED_LOGIN.password}\n`, encoding: 'utf8' }).trim();
  // The variables as playbooks/README.md has ops pass them: in a file only its owner reads, never on the command line.
  const varsFile = (taskId) => {
    const file = path.join(tempDir('ec2-api-bench-hand-'), 'vars.json');
    fs.writeFileSync(file, JSON.stringify({ task_id: taskId, username: FIXED_LOGIN.username, password_hash: hash }), { mode: 0o600 });
    return file;
  };
  const ansible = process.env.EC2_API_ANSIBLE_PLAYBOOK?.trim() || fromVenv('ansible-playbook');
  const env = safeEnv(moto.url);

  // CPU of a run: the bench reaps the by-hand ansible-playbook, the service reaps its own.
  const handCpu = [];
  const apiCpu = [];
  const byHand = async () => {
    const taskId = `bench-hand-${randomUUID()}`;
    const before = cpuTimes(process.pid).children;
    const run = await runToEnd(
      ansible,
      ['-i', 'inventory', 'playbooks/create.yml', '-e', `@${varsFile(taskId)}`],
      { env },
    );
    // A failed task makes the run exit non-zero; and the instance must be there, once.
    if (run.code !== 0) throw new Error(`ansible-playbook by hand exited ${run.code}:\n${run.output.slice(-1500)}`);
    const launched = (await instanceIdsOfTask(moto.url, taskId)).length;
    if (launched !== 1) throw new Error(`ansible-playbook by hand exited 0 but left ${launched} instances tagged ${taskId}:\n${run.output.slice(-1500)}`);
    handCpu.push(cpuTimes(process.pid).children - before);
    return run.seconds;
  };
  const viaApi = async () => {
    const before = cpuTimes(service.pid).children;
    const started = process.hrtime.bigint();
    const response = await fetch(`${service.url}/create`, { method: 'POST', headers: JSON_HEADERS, body: BODY });
    const body = await response.json();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (response.status !== 200) throw new Error(`POST /create → ${response.status} ${JSON.stringify(body)}`);
    // The answer can come before the run has ended (a task ends with its result): wait for it to be reaped.
    await waitRunsReaped(service, 30_000);
    apiCpu.push(cpuTimes(service.pid).children - before);
    const doc = await getStatus(service.url, body.task_id);
    const queueMs = Date.parse(doc.started_at) - Date.parse(doc.created_at);
    const runMs = Date.parse(doc.finished_at) - Date.parse(doc.started_at);
    return { seconds, queueMs, runMs };
  };

  log('sync: warm-up (one by-hand run, one /create; not timed)');
  await byHand();
  await viaApi();
  handCpu.length = 0;
  apiCpu.length = 0;
  const api = [];
  const hand = [];
  for (let i = 0; i < opts.runs; i++) {
    const order = i % 2 === 0 ? ['api', 'hand'] : ['hand', 'api'];
    for (const which of order) {
      if (which === 'api') api.push(await viaApi());
      else hand.push(await byHand());
    }
    log(`  run ${i + 1}/${opts.runs}: /create ${api.at(-1).seconds.toFixed(2)} s, by hand ${hand.at(-1).toFixed(2)} s`);
  }
  await service.stop();
  await moto.stop();
  const apiMedian = median(api.map((r) => r.seconds));
  const handMedian = median(hand);
  return {
    runs: opts.runs,
    api_s: api.map((r) => round(r.seconds, 3)),
    hand_s: hand.map((s) => round(s, 3)),
    api_median_s: round(apiMedian, 3),
    hand_median_s: round(handMedian, 3),
    ratio: round(apiMedian / handMedian, 3),
    cpu_s_median: { api_playbook: round(median(apiCpu), 2), hand_playbook: round(median(handCpu), 2) },
    api_breakdown_median_ms: {
      queued_to_started: median(api.map((r) => r.queueMs)),
      started_to_finished: median(api.map((r) => r.runMs)),
    },
  };
}

function check(sync, add) {
  add('sync', `median /create · by hand (${sync.runs} runs)`, `${sync.api_median_s} s · ${sync.hand_median_s} s`);
  add('sync', 'playbook CPU s median: API · by hand', `${sync.cpu_s_median.api_playbook} · ${sync.cpu_s_median.hand_playbook}`);
  add('sync', '/create: queued→started · started→finished', `${sync.api_breakdown_median_ms.queued_to_started} ms · ${sync.api_breakdown_median_ms.started_to_finished} ms`);
  add('sync', 'ratio /create ÷ by hand', `${sync.ratio}×`, TARGETS.sync.ratio.text, TARGETS.sync.ratio.pass(sync.ratio));
}

export default {
  name: 'sync',
  key: 'sync',
  idleMoto: false,
  run: phaseSync,
  check,
};
