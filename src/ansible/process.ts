// Facts about processes from /proc: enough to tell "is this still the
// ansible-playbook we started?" after our own process has died and come back.
import fs from 'node:fs';

/**
 * The kernel's start time of a process (clock ticks since boot, field 22 of
 * /proc/<pid>/stat). A pid plus its start time names one process for good: a
 * recycled pid has another start time.
 */
export function processStartTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may hold spaces and parentheses; everything after the
    // last ')' is space-separated, starting at field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

export function isSameProcessAlive(pid: number, startTime: string): boolean {
  return processStartTime(pid) === startTime;
}

/** Sends a signal to a whole process group; quiet when it is already gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** Whether any process is still in the group. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** SIGKILLs a process group and waits (up to `waitMs`) until none of it is left. */
export async function killGroupAndWait(pgid: number, waitMs = 10_000): Promise<boolean> {
  signalGroup(pgid, 'SIGKILL');
  const deadline = Date.now() + waitMs;
  while (groupAlive(pgid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}
