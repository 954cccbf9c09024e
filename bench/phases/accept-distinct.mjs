// accept-distinct: POST /create-async with a new username and password on
// every request (synchronous=FULL), 16 then 64 connections; then kill -9,
// durability, and proof that each request was really hashed: as many
// different hashes as rows, and a sample checked with openssl passwd -6.
import { bad, badText, cannon, summarizeCannon } from '../lib/cannon.mjs';
import { hashCounts, storedCreates } from '../lib/db.mjs';
import { distinctCreateRequests, loginSource, verifyHashes } from '../lib/load.mjs';
import { readStat } from '../lib/procfs.mjs';
import { pausedService, withThreadSplit } from '../lib/service.mjs';
import { cores, log, mb } from '../lib/stats.mjs';
import { TARGETS } from '../targets.mjs';

/** accept-distinct: POST /create-async with a new username and password on every request (synchronous=FULL, the default). */
async function phaseAcceptDistinct(opts) {
  const service = await pausedService(opts, 'accept-distinct');
  const nextLogin = loginSource();
  const accepted = [];
  const sample = new Map();
  const out = {};
  for (const connections of [16, 64]) {
    log(`accept, a new password on every request: ${connections} connections × ${opts.duration} s`);
    const { value: result, split } = await withThreadSplit(service.pid, () =>
      cannon({
        url: service.url,
        connections,
        duration: opts.duration,
        requests: distinctCreateRequests(nextLogin, { accepted, sample }),
      }),
    );
    out[`c${connections}`] = { ...summarizeCannon(result), service_cpu: split };
  }
  const rssAfter = readStat(service.pid)?.rss ?? 0;
  const stopSignal = opts.profile ? 'SIGTERM' : 'SIGKILL';
  await service.stop({ signal: stopSignal });
  const stored = storedCreates(service.dbPath);
  const found = accepted.filter((id) => stored.has(id)).length;
  out.stopped_with = stopSignal;
  out.durable = { accepted_202: accepted.length, found, rows_in_tasks: stored.size, all_durable: found === accepted.length };
  out.hashes = hashCounts(stored);
  out.hashes.verified_with_openssl = verifyHashes(sample, stored);
  out.rss_mb_after = mb(rssAfter);
  log(
    `  durable 202s: ${found}/${accepted.length}; distinct hashes ${out.hashes.distinct_hashes}/${out.hashes.rows}; ` +
      `openssl agrees on ${out.hashes.verified_with_openssl.matching}/${out.hashes.verified_with_openssl.checked}`,
  );
  return out;
}

function check(distinct, add) {
  const label = 'accept distinct';
  const v = distinct.hashes.verified_with_openssl;
  add(label, '16 conn req/s', distinct.c16.req_per_s, TARGETS.acceptDistinct.c16ReqPerS.text, TARGETS.acceptDistinct.c16ReqPerS.pass(distinct.c16.req_per_s));
  add(label, '16 conn p50 · p99', `${distinct.c16.latency_ms.p50} ms · ${distinct.c16.latency_ms.p99} ms`);
  add(label, '16 conn non-2xx · errors', badText(distinct.c16), '0 · 0', bad(distinct.c16) === 0);
  add(label, '16 conn service CPU, cores: main · hash thread · rest', cores(distinct.c16.service_cpu));
  add(label, '64 conn req/s · p50 · p99', `${distinct.c64.req_per_s} · ${distinct.c64.latency_ms.p50} ms · ${distinct.c64.latency_ms.p99} ms`);
  add(label, '64 conn non-2xx · errors', badText(distinct.c64), '0 · 0', bad(distinct.c64) === 0);
  add(label, `durable 202s (after ${distinct.stopped_with === 'SIGKILL' ? 'kill -9' : 'SIGTERM'})`, `${distinct.durable.found}/${distinct.durable.accepted_202}`, 'all', distinct.durable.all_durable);
  add(label, 'distinct hashes stored / rows', `${distinct.hashes.distinct_hashes} / ${distinct.hashes.rows}`, 'all', distinct.hashes.distinct_hashes === distinct.hashes.rows);
  add(label, 'hashes = openssl passwd -6 (sample)', `${v.matching}/${v.checked}`, 'all', v.checked > 0 && v.matching === v.checked);
}

export default {
  name: 'accept-distinct',
  key: 'accept_distinct',
  idleMoto: true,
  run: phaseAcceptDistinct,
  check,
};
