// Reads the instances this service manages straight from EC2, through
// playbooks/list.yml (one ec2_instance_info call on the ManagedBy tag).
import path from 'node:path';
import { PlaybookRun } from './runner.js';

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

export class ListError extends Error {}

export async function listManagedInstances(options: ListOptions): Promise<ManagedInstance[]> {
  const run = new PlaybookRun({
    playbook: path.join(options.playbookDir, 'list.yml'),
    projectDir: options.projectDir,
    ansiblePlaybook: options.ansiblePlaybook,
    env: options.env,
    vars: {},
    timeoutSeconds: options.timeoutSeconds,
  });
  const result = await run.done;
  const listed = (result.results as unknown as { instances?: ManagedInstance[] }).instances;
  if (!Array.isArray(listed)) {
    throw new ListError(`could not list the instances: ${result.lastError ?? `ansible-playbook exited with ${result.exitCode}`}`);
  }
  return listed;
}
