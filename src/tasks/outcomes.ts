// What a playbook's per-task result means for the task: pure functions from
// the results the playbooks report (see their headers) to task outcomes.
import type { PlaybookResultEntry, RunResult } from '../ansible/runner.js';
import { asInstanceState, type Outcome } from './model.js';

export const CANCELED = 'canceled by request';

/** One task's entry in a run's results, when it is there and has the shape the playbooks promise. */
export function entryFor(results: Record<string, unknown>, taskId: string): PlaybookResultEntry | undefined {
  const entry = results[taskId];
  if (!entry || typeof entry !== 'object' || typeof (entry as { ok?: unknown }).ok !== 'boolean') return undefined;
  return entry as PlaybookResultEntry;
}

const text = (value: unknown): string | null => (typeof value === 'string' && value ? value : null);

/** Why a run produced no result for a task, in words a user can act on. */
export function whyNoResult(result: RunResult, timeoutSeconds: number): string {
  const { end } = result;
  switch (end.kind) {
    case 'timed_out':
      return `the playbook ran longer than EC2_API_TASK_TIMEOUT (${timeoutSeconds} s) and was killed`;
    case 'spawn_failed':
      return end.error;
    case 'stopped':
      return 'the playbook was stopped before it reported a result';
    case 'completed':
      return `the playbook failed (exit code ${end.exitCode}) before reporting a result${result.lastError ? `: ${result.lastError}` : ''}`;
  }
}

export function createOutcome(entry: PlaybookResultEntry | undefined, why: string): Outcome {
  if (!entry) return { status: 'failed', error: why };
  const found = { ip: text(entry.public_ip), instance_id: text(entry.instance_id), instance_state: asInstanceState(entry.state) };
  if (!entry.ok) return { status: 'failed', ...found, error: text(entry.error) ?? 'the instance could not be launched' };
  return { status: 'succeeded', ...found };
}

export function deleteOutcome(ip: string, entry: PlaybookResultEntry | undefined, why: string): Outcome {
  if (!entry) return { status: 'failed', ip, error: why };
  const instance_id = text(entry.instance_id);
  if (!entry.ok) {
    return {
      status: 'failed',
      ip,
      instance_id,
      instance_state: asInstanceState(entry.state),
      error: text(entry.error) ?? `the instance with public IP ${ip} could not be terminated`,
    };
  }
  return { status: 'succeeded', ip, instance_id, instance_state: 'terminated' };
}

/** A canceled create, after cancel.yml looked for what it launched. */
export function cleanupOutcome(entry: PlaybookResultEntry | undefined, why: string): Outcome {
  if (!entry || !entry.ok) {
    return { status: 'canceled', error: `${CANCELED}; terminating its instance failed: ${text(entry?.error) ?? why}` };
  }
  const ids = Array.isArray(entry.instance_ids) ? entry.instance_ids.filter((id): id is string => typeof id === 'string') : [];
  return { status: 'canceled', instance_id: ids[0] ?? null, instance_state: ids.length ? 'terminated' : 'not_found', error: CANCELED };
}
