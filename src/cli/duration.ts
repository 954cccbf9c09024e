// Human durations for --ttl and `extend` (the API takes seconds): `90m`,
// `2h`, `1d12h`, `1w`, or a bare number of seconds. The CLI only: the API
// keeps one unit.
import { usageError } from './errors.js';

const UNIT_SECONDS: Record<string, number> = { w: 604_800, d: 86_400, h: 3_600, m: 60, s: 1 };
const DURATION = /^(?:\d+[wdhms])+$/;

/** Seconds in a duration such as `2h` or `1d12h`; a usage error naming the form otherwise. */
export function parseDuration(text: string): number {
  const value = text.trim().toLowerCase();
  if (/^\d+$/.test(value)) return Number(value);
  if (!DURATION.test(value)) {
    throw usageError(`"${text}" is not a duration: give a number with a unit, such as 90m, 2h, 1d or 1d12h (or seconds, such as 3600)`);
  }
  let seconds = 0;
  for (const [, amount, unit] of value.matchAll(/(\d+)([wdhms])/g)) seconds += Number(amount) * UNIT_SECONDS[unit!]!;
  return seconds;
}
