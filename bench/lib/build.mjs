// Builds dist/ when dist/server.js is missing or older than anything in src/.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync, execFileSync } from 'node:child_process';
import { projectRoot } from './procs.mjs';

function newestMtime(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(full));
    else newest = Math.max(newest, fs.statSync(full).mtimeMs);
  }
  return newest;
}

/** Returns what was done: 'up-to-date', 'built', or 'built-with-errors'. */
export function ensureBuilt(log = console.log) {
  const entry = path.join(projectRoot, 'dist', 'server.js');
  const srcNewest = Math.max(newestMtime(path.join(projectRoot, 'src')), fs.statSync(path.join(projectRoot, 'tsconfig.json')).mtimeMs);
  if (fs.existsSync(entry) && fs.statSync(entry).mtimeMs >= srcNewest) return 'up-to-date';
  log(fs.existsSync(entry) ? 'dist/server.js is older than src/: npm run build' : 'dist/server.js is missing: npm run build');
  const result = spawnSync('npm', ['run', '--silent', 'build'], { cwd: projectRoot, encoding: 'utf8' });
  if (result.status === 0) return 'built';
  // tsc emits despite type errors (noEmitOnError is off): src/ may be mid-edit.
  const out = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(0, 15).join('\n');
  if (!fs.existsSync(entry)) throw new Error(`npm run build failed and there is no dist/server.js:\n${out}`);
  log(`WARNING: npm run build reported errors (src/ may be mid-edit); benchmarking the emitted dist/ anyway:\n${out}`);
  return 'built-with-errors';
}

/** The commit measured, and whether the tree had local changes. */
export function gitRevision() {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { cwd: projectRoot, encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}
