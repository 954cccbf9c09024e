// Reading /proc: RSS, CPU time and descendants of a process, and a sampler
// that records their peaks every 100 ms. Linux only.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';

function getconf(name, fallback) {
  try {
    return Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim()) || fallback;
  } catch {
    return fallback;
  }
}

export const CLK_TCK = getconf('CLK_TCK', 100);
export const PAGE_SIZE = getconf('PAGESIZE', 4096);

/**
 * /proc/<pid>/stat, parsed. `comm` may hold spaces and parentheses, so the
 * fields are read after the last ')'. Times are in seconds, rss in bytes.
 */
export function readStat(pid) {
  let raw;
  try {
    raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const close = raw.lastIndexOf(')');
  const comm = raw.slice(raw.indexOf('(') + 1, close);
  const f = raw.slice(close + 2).split(' ');
  // f[0] is field 3 (state): field k is f[k - 3].
  return {
    pid,
    comm,
    state: f[0],
    ppid: Number(f[1]),
    utime: Number(f[11]) / CLK_TCK,
    stime: Number(f[12]) / CLK_TCK,
    cutime: Number(f[13]) / CLK_TCK,
    cstime: Number(f[14]) / CLK_TCK,
    starttime: Number(f[19]),
    rss: Number(f[21]) * PAGE_SIZE,
  };
}

export function readCmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** Every process's stat, by a scan of /proc (no /proc/<pid>/task/<tid>/children here). */
export function allStats() {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat) out.push(stat);
  }
  return out;
}

/** The descendants of `root` (not root itself), from one /proc scan. */
export function descendants(root, stats = allStats()) {
  const children = new Map();
  for (const s of stats) {
    if (!children.has(s.ppid)) children.set(s.ppid, []);
    children.get(s.ppid).push(s);
  }
  const out = [];
  const stack = [root];
  while (stack.length) {
    for (const child of children.get(stack.pop()) ?? []) {
      out.push(child);
      stack.push(child.pid);
    }
  }
  return out;
}

export const MB = 1024 * 1024;

/**
 * Samples `pid` and its descendants every `intervalMs`: peak RSS of the
 * process, peak total RSS of its descendants (and how many there were then),
 * and the ansible-playbook runs seen among its direct children. A run's CPU
 * is the jump of the parent's cutime+cstime in the interval it disappeared
 * (exact when it was the only one to end then; otherwise the runs that ended
 * together share `cpuShared`).
 */
export function startSampler(pid, intervalMs = 100) {
  const state = {
    samples: 0,
    peakRss: 0,
    lastRss: 0,
    peakDescendantRss: 0,
    peakDescendantCount: 0,
    peakDescendantProcesses: 0,
    // key pid:starttime -> { pid, firstSeen, lastSeen, endedBy, cpu, cpuShared }
    playbookRuns: new Map(),
  };
  let alive = new Set();
  let lastReaped = null;
  const reapedNow = () => {
    const s = readStat(pid);
    return s ? s.cutime + s.cstime : null;
  };
  const sample = () => {
    // The scan of /proc is not atomic: a run reaped during it could be seen alive with its CPU
    // already in the parent's, or the other way round. Scan again until none was reaped meanwhile.
    let stats;
    let reaped;
    for (let attempt = 0; attempt < 5; attempt++) {
      const before = reapedNow();
      stats = allStats();
      reaped = reapedNow();
      if (before === reaped) break;
    }
    const self = stats.find((s) => s.pid === pid);
    if (!self || reaped === null) return;
    state.samples++;
    state.lastRss = self.rss;
    state.peakRss = Math.max(state.peakRss, self.rss);
    const all = descendants(pid, stats);
    const desc = all.filter((s) => s.state !== 'Z');
    const total = desc.reduce((sum, s) => sum + s.rss, 0);
    if (total > state.peakDescendantRss) {
      state.peakDescendantRss = total;
      state.peakDescendantCount = desc.length;
    }
    state.peakDescendantProcesses = Math.max(state.peakDescendantProcesses, desc.length);
    const now = Date.now();
    const seen = new Set();
    // A run that has exited but is not reaped yet (a zombie) still counts as alive: its CPU reaches cutime at the reap.
    // (A zombie has no cmdline left: a run is recognised by its command line once, then by pid and start time.)
    for (const child of all) {
      if (child.ppid !== pid) continue;
      const key = `${child.pid}:${child.starttime}`;
      if (!state.playbookRuns.has(key) && !readCmdline(child.pid).some((arg) => arg.endsWith('ansible-playbook'))) continue;
      seen.add(key);
      const run = state.playbookRuns.get(key) ?? { pid: child.pid, firstSeen: now, lastSeen: now, endedBy: null, cpu: null, cpuShared: null };
      run.lastSeen = now;
      state.playbookRuns.set(key, run);
    }
    const ended = [...alive].filter((key) => !seen.has(key));
    if (lastReaped !== null && ended.length) {
      const jump = reaped - lastReaped;
      for (const key of ended) {
        const run = state.playbookRuns.get(key);
        run.endedBy = now;
        if (ended.length === 1) run.cpu = jump;
        else run.cpuShared = { cpu: jump, runs: ended.length };
      }
    }
    lastReaped = reaped;
    alive = seen;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    state,
    sampleNow: sample,
    /** ansible-playbook children alive at the last sample. */
    get liveRuns() {
      return alive.size;
    },
    stop() {
      clearInterval(timer);
      sample();
      return state;
    },
  };
}

/** CPU seconds of a process and of its reaped children (what it waited for). */
export function cpuTimes(pid) {
  const s = readStat(pid);
  if (!s) return null;
  return { self: s.utime + s.stime, children: s.cutime + s.cstime };
}

/** Other heavy things running now: tap test runners, ansible, moto servers not ours. */
export function otherLoad(excludeRoots) {
  const stats = allStats();
  const mine = new Set([process.pid]);
  for (const root of excludeRoots) {
    mine.add(root);
    for (const d of descendants(root, stats)) mine.add(d.pid);
  }
  for (const d of descendants(process.pid, stats)) mine.add(d.pid);
  const found = { tap: 0, ansible: 0, moto: 0, node: 0 };
  for (const s of stats) {
    if (mine.has(s.pid)) continue;
    const cmd = readCmdline(s.pid).join(' ');
    if (/(^|[/\s])tap(\s|$)|\/\.bin\/tap|tap\/dist|@tapjs/.test(cmd)) found.tap++;
    else if (/ansible-playbook/.test(cmd)) found.ansible++;
    else if (/moto\.server|ThreadedMotoServer/.test(cmd)) found.moto++;
    else if (/^(\S*\/)?node(\s|$)/.test(cmd)) found.node++;
  }
  return found;
}

/**
 * CPU seconds of the whole machine from /proc/stat: busy (everything but idle
 * and iowait) and steal (time the hypervisor gave to other guests).
 */
export function machineCpu() {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return { busy: (user + nice + system + irq + softirq) / CLK_TCK, idle: (idle + iowait) / CLK_TCK, steal: (steal ?? 0) / CLK_TCK };
}

/**
 * CPU seconds used so far by `root` and everything under it: its own time, the
 * time of the children it reaped, and of every live descendant (with what each
 * of those reaped). A descendant that ends moves from the live sum into its
 * parent's reaped time, so differences of this figure are the tree's CPU.
 */
export function treeCpu(root, stats = allStats()) {
  const self = stats.find((s) => s.pid === root);
  if (!self) return 0;
  const live = descendants(root, stats).reduce((sum, s) => sum + s.utime + s.stime + s.cutime + s.cstime, 0);
  return self.utime + self.stime + self.cutime + self.cstime + live;
}

/** CPU seconds of each thread of `pid` (tid → seconds), from /proc/<pid>/task. */
export function threadTimes(pid) {
  const out = new Map();
  let tids = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const raw = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), (Number(f[11]) + Number(f[12])) / CLK_TCK);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/**
 * Where a process's CPU went between two threadTimes() readings: its main
 * thread, its busiest other thread (in the service: the password-hashing
 * worker), and all the rest (V8's GC helpers, libuv's pool, …), in seconds and
 * as a share of `wallSeconds` (1 = one core all the time). Ours: the bench
 * process's CPU over the same time (autocannon, the probe).
 */
export function threadSplit(pid, before, after, wallSeconds) {
  const delta = [];
  for (const [tid, t] of after) delta.push({ tid, cpu: t - (before.get(tid) ?? 0) });
  const main = delta.find((d) => d.tid === pid)?.cpu ?? 0;
  const others = delta.filter((d) => d.tid !== pid).sort((a, b) => b.cpu - a.cpu);
  const busiest = others[0]?.cpu ?? 0;
  const rest = others.slice(1).reduce((sum, d) => sum + d.cpu, 0);
  const share = (s) => Math.round((s / wallSeconds) * 100) / 100;
  const r2 = (s) => Math.round(s * 100) / 100;
  return {
    main_thread_s: r2(main),
    busiest_other_thread_s: r2(busiest),
    rest_s: r2(rest),
    cores: { main_thread: share(main), busiest_other_thread: share(busiest), rest: share(rest) },
  };
}
