// The bench's targets, in one table: what each figure must reach for
// `npm run bench` to print PASS (otherwise MISS). They are those of the issue
// that asked for the performance round (issue 10), with the Flask + Celery
// original's figures as the floor (bench/README.md, Results). A phase reads
// its own entry; a figure without an entry is reported, not judged.

const number = (n) => n.toLocaleString('en');
/** A figure that must be at least `limit`. */
const atLeast = (limit, unit = '') => ({ text: `≥ ${number(limit)}${unit}`, pass: (value) => value !== null && value !== undefined && value >= limit });
/** A figure that must be at most `limit`. */
const atMost = (limit, unit = '') => ({ text: `≤ ${number(limit)}${unit}`, pass: (value) => value !== null && value !== undefined && value <= limit });

export const TARGETS = {
  /** POST /create-async, the same body every time, 64 connections. */
  accept: { c64ReqPerS: atLeast(5000), c64P99Ms: atMost(20, ' ms') },
  /** POST /create-async, a new password on every request, 16 connections. */
  acceptDistinct: { c16ReqPerS: atLeast(250) },
  /** GET /status/<id>, 64 connections. */
  status: { reqPerS: atLeast(10000), p99Ms: atMost(10, ' ms') },
  /** GET /status p99 of the paced probe while distinct-password creates arrive. */
  statusLoad: { p99Ms: atMost(25, ' ms') },
  /** Service RSS, idle and with 1,000 tasks queued. */
  memory: { idleMb: atMost(100, ' MB'), queued1000Mb: atMost(100, ' MB') },
  /** N creates at once: seconds to the first and the last result, and the Ansible CPU a task adds to a run. */
  drain: {
    firstResultS: { 20: atMost(3, ' s') },
    lastResultS: { 20: atMost(4, ' s'), 50: atMost(6, ' s'), 200: atMost(15, ' s') },
    cpuPerTaskBeyondFixedS: atMost(0.1, ' s'),
  },
  /** Sync POST /create ÷ the same playbook run by hand: no slower. */
  sync: { ratio: atMost(1, '×') },
  /** Issue 18, against the metered EC2: drain ÷ floor ((N − 5) / 2 s), share of RunInstances throttled, first result; moto alone. */
  pacing: {
    ratio: atMost(1.15, '×'),
    throttledShare: { text: '≤ 10 %', pass: (share) => share !== null && share !== undefined && share <= 0.1 },
    firstResultS: { 40: atMost(3, ' s') },
    unmeteredLastResultS: { 20: atMost(4, ' s') },
  },
};
