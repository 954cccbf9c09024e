// What the bench prints and records besides its figures: the table of
// results, the machine it ran on, and what else the machine did meanwhile.
import fs from 'node:fs';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { gitRevision } from './build.mjs';
import { machineCpu, otherLoad, treeCpu } from './procfs.mjs';
import { fromVenv } from './procs.mjs';
import { round } from './stats.mjs';

export function printTable(rows) {
  const cells = rows.map((r) => [r.phase, r.metric, String(r.value), r.target, r.pass === null ? '' : r.pass ? 'PASS' : 'MISS']);
  const header = ['phase', 'metric', 'value', 'target', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => c.map((v, i) => (i === 2 ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  let last = null;
  for (const c of cells) {
    console.log(line(c[0] === last ? ['', ...c.slice(1)] : c));
    last = c[0];
  }
}

export function machine() {
  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  let ansible = null;
  try {
    ansible = execFileSync(process.env.EC2_API_ANSIBLE_PLAYBOOK?.trim() || fromVenv('ansible-playbook'), ['--version'], { encoding: 'utf8' }).split('\n')[0];
  } catch {
    // reported as null
  }
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu,
    memory_gb: round(os.totalmem() / 1024 ** 3, 1),
    node: process.version,
    kernel: os.release(),
    ansible,
    git: gitRevision(),
  };
}

/** What else the machine did during a phase: once a second, and the CPU not ours from /proc/stat. */
export function contentionMonitor() {
  const phases = {};
  let current = null;
  let start = null;
  const timer = setInterval(() => {
    if (!current) return;
    const found = otherLoad([]);
    const c = phases[current];
    c.seconds++;
    if (found.tap) c.seconds_with_tap++;
    if (found.ansible) c.seconds_with_foreign_ansible++;
    c.max_foreign_ansible = Math.max(c.max_foreign_ansible, found.ansible);
    c.max_loadavg_1m = Math.max(c.max_loadavg_1m, round(os.loadavg()[0], 2));
  }, 1000);
  timer.unref();
  const snapshot = () => ({ machine: machineCpu(), ours: treeCpu(process.pid), at: Date.now() });
  return {
    phases,
    begin(name) {
      current = name;
      phases[name] = { seconds: 0, seconds_with_tap: 0, seconds_with_foreign_ansible: 0, max_foreign_ansible: 0, max_loadavg_1m: round(os.loadavg()[0], 2) };
      start = snapshot();
    },
    end() {
      const stop = snapshot();
      const c = phases[current];
      const wall = (stop.at - start.at) / 1000;
      const busy = stop.machine.busy - start.machine.busy;
      const ours = stop.ours - start.ours;
      c.wall_s = round(wall, 1);
      c.cpu_s_available = round(wall * os.cpus().length, 1);
      c.cpu_s_ours = round(ours, 1);
      // Busy CPU of the machine not spent by the bench or anything it started (other engineers' work, the kernel).
      c.cpu_s_others = round(Math.max(0, busy - ours), 1);
      c.cpu_s_steal = round(stop.machine.steal - start.machine.steal, 1);
      current = null;
    },
    stop() {
      clearInterval(timer);
    },
  };
}

export function printContention(phases) {
  const rows = Object.entries(phases).map(([name, c]) => [
    name,
    String(c.wall_s),
    `${c.cpu_s_ours} / ${c.cpu_s_others} / ${c.cpu_s_steal} of ${c.cpu_s_available}`,
    String(c.max_loadavg_1m),
    `${c.seconds_with_tap}/${c.seconds} s`,
    `${c.seconds_with_foreign_ansible}/${c.seconds} s (≤ ${c.max_foreign_ansible})`,
  ]);
  const header = ['phase', 'wall s', 'CPU s: bench / others / steal of available', 'max load', 'tap seen', 'foreign ansible-playbook seen'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (c) => c.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}
