// How a task ends, and what the API's two event streams (GET /tasks/<id>/events
// and GET /events) say of it, named once for both clients (src/cli and
// src/console). The OpenAPI document describes the streams as text, so their
// events are written here, after docs/API.md; everything else the clients
// know of the API is generated (openapi.d.ts, vocabulary.ts).
import type { StepEnd, StepStart, Task, TaskStatus } from './documents.js';
import { STATUSES } from './vocabulary.js';

/** The statuses a task ends in: it never changes again. */
export const TERMINAL_STATUSES = STATUSES.filter((status) => status !== 'queued' && status !== 'running');

export const isTerminal = (status: TaskStatus): boolean => (TERMINAL_STATUSES as readonly TaskStatus[]).includes(status);

/** An event of the streams, by its `event:` name, with its parsed `data:`. */
export type StreamEvent =
  /** The task's whole document, at every change of its status. */
  | { type: 'status'; data: Task & { at: string } }
  /** A playbook step began. */
  | { type: 'step_start'; data: StepStart }
  /** A playbook step ended. */
  | { type: 'step_end'; data: StepEnd }
  /** The last event of GET /tasks/<id>/events: the task's final document. */
  | { type: 'end'; data: Task }
  /** The first event of GET /events: what follows comes after event `after`. */
  | { type: 'ready'; data: { after: number } }
  /** The service is shutting down: the stream ends; resume with Last-Event-ID a few seconds later. */
  | { type: 'stopping'; data: { message: string } };

/** The events that tell of one task: kept, replayed and resumed by event id. */
export type TaskEvent = Extract<StreamEvent, { type: 'status' | 'step_start' | 'step_end' }>;

const NAMES: ReadonlySet<string> = new Set<StreamEvent['type']>(['status', 'step_start', 'step_end', 'end', 'ready', 'stopping']);

/** A message as an SSE parser gives it (eventsource-parser's EventSourceMessage). */
export interface StreamMessage {
  event?: string | undefined;
  data: string;
}

/** The event a message carries, or null for a name this client does not know (a newer server's). */
export function streamEvent(message: StreamMessage): StreamEvent | null {
  if (!message.event || !NAMES.has(message.event)) return null;
  return { type: message.event, data: JSON.parse(message.data) } as StreamEvent;
}

export const isTaskEvent = (event: StreamEvent | null): event is TaskEvent =>
  event?.type === 'status' || event?.type === 'step_start' || event?.type === 'step_end';
