// What the task page knows of one task: its document, and its playbook steps
// with their times, built from the task's events (GET /tasks/<id>/events).
import type { StepEnd, StepStart, Task } from '../../../api/documents.js';
import { isTerminal, type StreamEvent } from '../../../api/lifecycle.js';

export interface Step {
  step: number;
  of: number;
  name: string;
  start: number;
  end: number | null;
  status: string | null;
  msg?: string;
}

/** Steps are numbered per play: a number that does not go up starts a new group (another play or run). */
export type Group = Step[];

export class TaskModel {
  task: Task | null = null;
  readonly groups: Group[] = [];

  get steps(): Step[] {
    return this.groups.flat();
  }

  get ended(): boolean {
    return this.task !== null && isTerminal(this.task.status);
  }

  /** The step that failed the run, if one did. */
  get failedStep(): Step | undefined {
    return this.steps.find((s) => s.status === 'failed' || s.status === 'unreachable');
  }

  /** Takes in one event; true when it changed the task's status. */
  apply(event: StreamEvent): boolean {
    switch (event.type) {
      case 'status':
      case 'end': {
        const { at: _at, ...doc } = event.data as Task & { at?: string };
        const changed = this.task !== null && this.task.status !== doc.status;
        this.task = doc;
        return changed;
      }
      case 'step_start':
        this.stepStart(event.data);
        // The task document's progress is only sent with status changes: keep it current here.
        if (this.task?.status === 'running') this.task = { ...this.task, progress: { step: event.data.step, of: event.data.of, name: event.data.name } };
        return false;
      case 'step_end':
        this.stepEnd(event.data);
        return false;
      default:
        return false;
    }
  }

  private stepStart(data: StepStart): void {
    const start = Date.parse(data.at);
    let group = this.groups.at(-1);
    const previous = group?.at(-1);
    if (!group || !previous || data.step <= previous.step || data.of !== previous.of) {
      group = [];
      this.groups.push(group);
    }
    // A step still open when the next one starts has ended without saying so.
    for (const open of this.steps) if (open.end === null) open.end = start;
    group.push({ step: data.step, of: data.of, name: data.name, start, end: null, status: null });
  }

  private stepEnd(data: StepEnd): void {
    const step = this.steps.reverse().find((s) => s.step === data.step && s.name === data.name && s.status === null);
    if (!step) return;
    step.status = data.status;
    step.end = data.duration_ms !== null && data.duration_ms !== undefined ? step.start + data.duration_ms : Date.parse(data.at);
    if (data.msg) step.msg = data.msg;
  }
}
