// A playbook's output, capped: the first 64 KiB and the last 1 MiB are kept,
// so a runaway run cannot fill the disk yet its PLAY RECAP and final error
// (at the end) survive. Offsets count characters of the whole output as the
// playbook wrote it, so a reader that follows with ?offset= stays right
// while the middle is being dropped.

export const HEAD_LIMIT = 64 * 1024;
export const TAIL_LIMIT = 1024 * 1024;

/** A capped output as it is stored: its beginning, its end, and how long it was in all. */
export interface CappedText {
  head: string;
  tail: string;
  /** Characters written in all: head + what was left out + tail. */
  size: number;
}

export const EMPTY_OUTPUT: CappedText = { head: '', tail: '', size: 0 };

const omitted = (log: CappedText) => log.size - log.head.length - log.tail.length;

const marker = (count: number) =>
  count > 0 ? `\n… ${count.toLocaleString('en-US')} characters of output left out here (the first 64 KiB and the last 1 MiB are kept) …\n` : '';

/** The text a reader sees: head, a line saying how much was left out, tail. */
export function outputText(log: CappedText): string {
  return log.head + marker(omitted(log)) + log.tail;
}

/** What came after `offset` characters of the whole output (with the marker when it starts in the part left out). */
export function outputFrom(log: CappedText, offset: number): string {
  const tailStart = log.size - log.tail.length;
  if (offset < log.head.length) return log.head.slice(offset) + marker(omitted(log)) + log.tail;
  if (offset < tailStart) return marker(omitted(log)) + log.tail;
  return log.tail.slice(offset - tailStart);
}

export class CappedOutput {
  private head: string;
  /** Grows to twice the limit before it is cut, so appending stays cheap. */
  private tail: string;
  private size: number;

  constructor(from: CappedText = EMPTY_OUTPUT) {
    this.head = from.head;
    this.tail = from.tail;
    this.size = from.size;
  }

  append(chunk: string): void {
    this.size += chunk.length;
    if (this.head.length < HEAD_LIMIT && this.size - chunk.length === this.head.length) {
      const room = HEAD_LIMIT - this.head.length;
      this.head += chunk.slice(0, room);
      chunk = chunk.slice(room);
    }
    if (!chunk) return;
    this.tail += chunk;
    if (this.tail.length > 2 * TAIL_LIMIT) this.tail = this.tail.slice(-TAIL_LIMIT);
  }

  get snapshot(): CappedText {
    return { head: this.head, tail: this.tail.length > TAIL_LIMIT ? this.tail.slice(-TAIL_LIMIT) : this.tail, size: this.size };
  }
}

/**
 * `first`, a line naming what follows, then `second`, as one output: how a
 * canceled task's log goes on with its clean-up run, so a reader following
 * it with ?offset= sees one text that only grows.
 */
export function followedBy(first: CappedText, heading: string, second: CappedText): CappedText {
  const output = new CappedOutput(first);
  output.append(`${first.size ? '\n' : ''}--- ${heading} ---\n`);
  output.append(outputText(second));
  return output.snapshot;
}
