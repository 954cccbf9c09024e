// accept: POST /create-async with the same body every time ("fixed body"),
// 16 then 64 connections, on a paused service; then kill -9, and every
// task_id answered 202 is looked up in the tasks table. Twice: with
// synchronous=FULL (the default) and EC2_API_DB_SYNC=NORMAL.
import { bad, badText, cannon, summarizeCannon } from '../lib/cannon.mjs';
import { hashCounts, storedCreates } from '../lib/db.mjs';
import { readStat } from '../lib/procfs.mjs';
import { BODY, JSON_HEADERS, pausedService } from '../lib/service.mjs';
import { log, mb } from '../lib/stats.mjs';
import { TARGETS } from '../targets.mjs';

/** accept: POST /create-async with the same body every time, on a paused service; then kill -9 and count what is on disk. */
async function phaseAccept(opts) {
  const out = {};
  for (const sync of ['FULL', 'NORMAL']) {
    const service = await pausedService(opts, `accept-${sync}`, { EC2_API_DB_SYNC: sync === 'NORMAL' ? 'NORMAL' : undefined });
    const accepted = [];
    const runs = {};
    for (const connections of [16, 64]) {
      log(`accept (fixed body), synchronous=${sync}: ${connections} connections × ${opts.duration} s`);
      const result = await cannon({
        url: service.url,
        connections,
        duration: opts.duration,
        requests: [
          {
            method: 'POST',
            path: '/create-async',
            headers: JSON_HEADERS,
            body: BODY,
            onResponse: (status, body) => {
              if (status !== 202) return;
              const match = /"task_id":"([0-9a-f-]{36})"/.exec(body);
              if (match) accepted.push(match[1]);
            },
          },
        ],
      });
      runs[`c${connections}`] = summarizeCannon(result);
    }
    const rssAfter = readStat(service.pid)?.rss ?? 0;
    // The crash: no shutdown code runs. (--profile needs a clean exit to write the profile.)
    const stopSignal = opts.profile ? 'SIGTERM' : 'SIGKILL';
    await service.stop({ signal: stopSignal });
    const stored = storedCreates(service.dbPath);
    const found = accepted.filter((id) => stored.has(id)).length;
    out[sync] = {
      db_sync: sync === 'NORMAL' ? 'NORMAL (EC2_API_DB_SYNC=NORMAL)' : 'FULL (default)',
      ...runs,
      stopped_with: stopSignal,
      durable: { accepted_202: accepted.length, found, rows_in_tasks: stored.size, all_durable: found === accepted.length },
      // The same login each time: distinct_hashes 1 means the service reused one hash; = rows, that it hashed every request.
      hashes: hashCounts(stored),
      rss_mb_after: mb(rssAfter),
    };
    log(`  durable 202s: ${found}/${accepted.length} (rows: ${stored.size}, distinct hashes: ${out[sync].hashes.distinct_hashes}, stopped with ${stopSignal})`);
  }
  return out;
}

function check(accept, add) {
  for (const [sync, r] of Object.entries(accept)) {
    const label = `accept fixed ${sync}`;
    add(label, '16 conn req/s · p50 · p99', `${r.c16.req_per_s} · ${r.c16.latency_ms.p50} ms · ${r.c16.latency_ms.p99} ms`);
    add(label, '16 conn non-2xx · errors', badText(r.c16), '0 · 0', bad(r.c16) === 0);
    add(label, '64 conn req/s', r.c64.req_per_s, TARGETS.accept.c64ReqPerS.text, TARGETS.accept.c64ReqPerS.pass(r.c64.req_per_s));
    add(label, '64 conn p50 · p99', `${r.c64.latency_ms.p50} ms · ${r.c64.latency_ms.p99} ms`, `p99 ${TARGETS.accept.c64P99Ms.text}`, TARGETS.accept.c64P99Ms.pass(r.c64.latency_ms.p99));
    add(label, '64 conn non-2xx · errors', badText(r.c64), '0 · 0', bad(r.c64) === 0);
    add(label, `durable 202s (after ${r.stopped_with === 'SIGKILL' ? 'kill -9' : 'SIGTERM'})`, `${r.durable.found}/${r.durable.accepted_202}`, 'all', r.durable.all_durable);
    add(label, 'distinct hashes stored / rows', `${r.hashes.distinct_hashes} / ${r.hashes.rows}`);
  }
}

export default {
  name: 'accept',
  key: 'accept',
  idleMoto: true,
  run: phaseAccept,
  check,
};
