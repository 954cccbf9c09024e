// Small numeric helpers of the bench's reports.
import { MB } from './procfs.mjs';

export const round = (n, digits = 1) => (n === null || n === undefined || Number.isNaN(n) ? null : Math.round(n * 10 ** digits) / 10 ** digits);

export const median = (xs) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

export const mb = (bytes) => round(bytes / MB, 1);

/** A line of the bench's progress. */
export const log = (...args) => console.log('·', ...args);

/** Where a service's CPU went, in cores (1 = one core the whole time): main thread · busiest other thread (the hash worker) · the rest. */
export const cores = (c) => `${c.cores.main_thread} · ${c.cores.busiest_other_thread} · ${c.cores.rest}`;
