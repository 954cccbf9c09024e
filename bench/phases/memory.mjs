// memory: service RSS 2 s after start, and 2 s after 1,000 fixed-body
// POST /create-async on a paused service.
import { readStat, startSampler } from '../lib/procfs.mjs';
import { sleep } from '../lib/procs.mjs';
import { pausedService, submitCreate } from '../lib/service.mjs';
import { log, mb } from '../lib/stats.mjs';
import { TARGETS } from '../targets.mjs';

/** memory: RSS idle, and with 1,000 tasks queued on a paused service. */
async function phaseMemory(opts) {
  const service = await pausedService(opts, 'memory');
  await sleep(2000);
  const idle = readStat(service.pid).rss;
  const sampler = startSampler(service.pid, 100);
  log('memory: 1,000 × POST /create-async (16 at a time)');
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < 1000) {
        next++;
        await submitCreate(service.url);
      }
    }),
  );
  await sleep(2000);
  const queuedRss = readStat(service.pid).rss;
  const samples = sampler.stop();
  const health = await fetch(`${service.url}/healthz`).then((r) => r.json());
  await service.stop();
  return { idle_mb: mb(idle), queued_1000_mb: mb(queuedRss), peak_while_submitting_mb: mb(samples.peakRss), healthz_queued: health.queued };
}

function check(memory, add) {
  add('memory', 'RSS idle', `${memory.idle_mb} MB`, TARGETS.memory.idleMb.text, TARGETS.memory.idleMb.pass(memory.idle_mb));
  add('memory', 'RSS with 1,000 queued', `${memory.queued_1000_mb} MB`, TARGETS.memory.queued1000Mb.text, TARGETS.memory.queued1000Mb.pass(memory.queued_1000_mb));
}

export default {
  name: 'memory',
  key: 'memory',
  idleMoto: true,
  run: phaseMemory,
  check,
};
