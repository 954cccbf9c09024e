// Exit statuses, and the one error type every command throws: a one-line
// message that says what to do, and the status the process exits with.

export const EXIT = {
  /** The command did what was asked. */
  ok: 0,
  /** The task failed or was canceled, or the server could not do what was asked (404, 409, 502…). */
  failed: 1,
  /** The command line (or the input the server validates) is wrong. */
  usage: 2,
  /** The server cannot be reached, refuses the token, or is unavailable (503). */
  unreachable: 3,
  /** Ctrl-C. */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
  }
}

export const usageError = (message: string) => new CliError(message, EXIT.usage);
