// What runs on this machine, read from /proc and pgrep, for tests that
// check that no process is left behind or that no secret is exposed.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/** Pids whose command line matches `pattern` (this test process excluded). */
export function pgrep(pattern: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number)
      .filter((pid) => pid !== process.pid);
  } catch {
    return [];
  }
}

export interface ProcessSample {
  pid: number;
  cmdline: string;
  environ: string;
}

/** Command line and environment of every process we can read, except ourselves. */
export function sampleProcesses(): ProcessSample[] {
  const out: ProcessSample[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      out.push({
        pid,
        cmdline: fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' '),
        environ: fs.readFileSync(`/proc/${pid}/environ`, 'utf8').replaceAll('\0', '\n'),
      });
    } catch {
      // gone already, or not ours to read
    }
  }
  return out;
}

/** Whether the process is a group leader (a whole ansible-playbook run, not one of its forks). */
export function isGroupLeader(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[2]) === pid;
  } catch {
    return false;
  }
}

/** Pids of every process in a process group (an ansible-playbook run and all it started). */
export function processGroup(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') members.push(pid);
    } catch {
      // gone
    }
  }
  return members;
}

/** Whether `pid`'s parent is this test process (a playbook our in-process service started). */
export function isOurChild(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid;
  } catch {
    return false;
  }
}
