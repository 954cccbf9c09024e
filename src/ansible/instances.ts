// Reads the instances this service manages straight from EC2, through
// playbooks/list.yml (one lookup on the ManagedBy tag), run in the pool like
// every other playbook.
import path from 'node:path';
import type { PlaybookPool } from './pool.js';

export interface ManagedInstance {
  instance_id: string;
  public_ip: string | null;
  state: string;
  launch_time: string | null;
  task_id: string | null;
  name: string | null;
  instance_type: string | null;
}

export interface ListOptions {
  playbookDir: string;
  projectDir: string;
  ansiblePlaybook: string;
  env: Record<string, string>;
  timeoutSeconds: number;
}

/** EC2 could not be read: the reason, in words a user can act on. */
export class ListError extends Error {}

/** The listing was stopped (the service is shutting down). */
export class ListStopped extends Error {}

export async function listManagedInstances(pool: PlaybookPool, options: ListOptions): Promise<ManagedInstance[]> {
  const run = pool.run({
    playbook: path.join(options.playbookDir, 'list.yml'),
    projectDir: options.projectDir,
    ansiblePlaybook: options.ansiblePlaybook,
    env: options.env,
    vars: {},
    timeoutSeconds: options.timeoutSeconds,
  });
  const result = await run.done;
  if (result.end.kind === 'stopped') throw new ListStopped('the service is shutting down');
  const listed = (result.results as { instances?: ManagedInstance[] }).instances;
  if (!Array.isArray(listed)) {
    const why =
      result.end.kind === 'timed_out'
        ? `list.yml ran longer than ${options.timeoutSeconds} s`
        : result.end.kind === 'spawn_failed'
          ? result.end.error
          : (result.lastError ?? `ansible-playbook exited with ${result.end.kind === 'completed' ? result.end.exitCode : '?'}`);
    throw new ListError(`could not list the instances: ${why}`);
  }
  return listed;
}
