// Why the engine refused a request. The HTTP layer maps each kind to a status
// code in one place (REFUSAL_STATUS in src/http/errors.ts); the message is a sentence for the user.

export type RefusalKind =
  /** The request names something the service will not do (a system account). */
  | 'invalid'
  /** The service is shutting down. */
  | 'unavailable'
  /** EC2_API_MAX_QUEUED tasks are waiting. */
  | 'queue_full'
  /** An Idempotency-Key reused with another request. */
  | 'key_conflict'
  | 'not_found'
  /** The task has already ended. */
  | 'finished'
  /** The task is past the point where a cancel could undo it (a running delete). */
  | 'not_cancelable'
  /** The request conflicts with what the service holds now (EC2_API_MAX_INSTANCES reached, a delete already queued). */
  | 'conflict';

export class Refusal extends Error {
  override name = 'Refusal';

  constructor(
    readonly kind: RefusalKind,
    message: string,
    /** The input at fault, for `invalid` and `key_conflict`. */
    readonly field?: string,
  ) {
    super(message);
  }
}

/** The service is shutting down: the same request can be sent again shortly (to this service once restarted, or another). */
export const shuttingDown = () => new Refusal('unavailable', 'the service is shutting down; retry in a few seconds');

export const TASK_NOT_FOUND = 'task not found';

/** The answer for an IP no live instance of the caller's holds: unknown and another token's alike. */
export const noInstance = (ip: string) => `no instance managed by ec2-api has public IP ${ip}`;
