// Reads a V8 .cpuprofile (node --cpu-prof) and ranks functions by self time.
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from './procs.mjs';

function where(frame) {
  if (!frame.url) return '';
  let file = frame.url.replace(/^file:\/\//, '');
  if (file.startsWith(projectRoot)) file = path.relative(projectRoot, file);
  return `${file}:${frame.lineNumber + 1}`;
}

/** Top `limit` functions by self time: [{ fn, where, ms, pct }], plus the total. */
export function topSelfTime(file, limit = 15) {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    self.set(id, (self.get(id) ?? 0) + dt);
  });
  const grouped = new Map();
  for (const [id, us] of self) {
    const frame = byId.get(id).callFrame;
    const key = `${frame.functionName || '(anonymous)'}\t${where(frame)}`;
    grouped.set(key, (grouped.get(key) ?? 0) + us);
  }
  // Inclusive time of the project's own functions (dist/, src/): what each costs with its callees.
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const inclusive = new Map();
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at).callFrame;
      const file = where(frame);
      if (!/^(dist|src)\//.test(file)) continue;
      const key = `${frame.functionName || '(anonymous)'}\t${file}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + dt);
    }
  });
  const busy = [...grouped].filter(([key]) => !key.startsWith('(idle)')).reduce((sum, [, us]) => sum + us, 0);
  const rows = [...grouped]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([key, us]) => {
      const [fn, at] = key.split('\t');
      return { fn, where: at, ms: Math.round(us / 1000), pct: Math.round((1000 * us) / total) / 10 };
    });
  const ownInclusive = [...inclusive]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([key, us]) => {
      const [fn, at] = key.split('\t');
      return { fn, where: at, ms: Math.round(us / 1000), pct: Math.round((1000 * us) / total) / 10 };
    });
  return { file: path.relative(projectRoot, file), totalMs: Math.round(total / 1000), busyMs: Math.round(busy / 1000), top: rows, ownInclusive };
}

export function formatTop(summary) {
  const lines = [`${summary.file}: ${summary.totalMs} ms sampled, ${summary.busyMs} ms not idle`];
  for (const row of summary.top) {
    lines.push(`  ${String(row.ms).padStart(7)} ms ${String(row.pct).padStart(5)}%  ${row.fn}  ${row.where}`);
  }
  if (summary.ownInclusive?.length) {
    lines.push('  project functions, inclusive (with callees):');
    for (const row of summary.ownInclusive) {
      lines.push(`  ${String(row.ms).padStart(7)} ms ${String(row.pct).padStart(5)}%  ${row.fn}  ${row.where}`);
    }
  }
  return lines.join('\n');
}
