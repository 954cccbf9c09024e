// Runs the real command-line client, as built (dist/cli/main.js, the file
// package.json's `bin` points at), as a child process: piped, or on a
// pseudo-terminal through util-linux `script`.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../src/config.js';

export const CLI = path.join(projectRoot, 'dist', 'cli', 'main.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

/** Builds the project when the built client is missing or older than its source. */
export function ensureCliBuilt(): void {
  const built = fs.existsSync(CLI) ? fs.statSync(CLI).mtimeMs : 0;
  if (built >= newestMtime(path.join(projectRoot, 'src', 'cli'))) return;
  execFileSync(process.execPath, [path.join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
    cwd: projectRoot,
    stdio: 'inherit',
  });
}

/** The environment a user would have: none of the client's own settings unless given. */
export function cliEnv(env: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(EC2_API_|NO_COLOR$|FORCE_COLOR$|TAP)/.test(name)) base[name] = value;
  }
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) delete base[name];
    else base[name] = value;
  }
  return base;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running process's command line (as others see it in `ps`) and environment, from /proc. */
export function processView(pid: number): { cmdline: string; environ: string } {
  return {
    cmdline: fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' '),
    environ: fs.readFileSync(`/proc/${pid}/environ`, 'utf8').replaceAll('\0', '\n'),
  };
}

export interface CliRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once `text` has appeared on stderr (or stdout). */
  waitFor(pattern: RegExp, ms?: number): Promise<void>;
  done: Promise<CliResult>;
}

/**
 * Waiting for a pattern in a child's growing output: `waitFor` resolves once
 * the pattern matches one of the streams `streams()` returns; call `check`
 * whenever they grow.
 */
function patternWaiter(streams: () => string[]) {
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  const check = () => {
    for (const waiter of [...waiters]) {
      if (streams().some((text) => waiter.pattern.test(text))) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };
  const waitFor = (pattern: RegExp, ms = 60_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern} in:\n${streams().join('\n')}`)), ms);
      waiters.push({
        pattern,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      check();
    });
  return { check, waitFor };
}

/** Starts `ec2-api <args>`; `input`, when given, is written to its stdin, which is then closed. */
export function startCli(args: string[], options: { env?: Record<string, string | undefined>; input?: string } = {}): CliRun {
  const child = spawn(process.execPath, [CLI, ...args], { env: cliEnv(options.env), stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const { check, waitFor } = patternWaiter(() => [stdout, stderr]);
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    check();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    check();
  });
  if (options.input !== undefined) child.stdin!.end(options.input);
  else child.stdin!.end();
  const done = new Promise<CliResult>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    waitFor,
    done,
  };
}

/** Runs `ec2-api <args>` to the end, piped. */
export function runCli(args: string[], options: { env?: Record<string, string | undefined>; input?: string } = {}): Promise<CliResult> {
  return startCli(args, options).done;
}

const shellQuote = (arg: string) => `'${arg.replaceAll("'", "'\\''")}'`;

export interface TtyRun {
  child: ChildProcess;
  output(): string;
  waitFor(pattern: RegExp, ms?: number): Promise<void>;
  /** Types into the terminal. */
  type(text: string): void;
  done: Promise<{ code: number | null; output: string }>;
}

/**
 * `ec2-api <args>` on a pseudo-terminal (stdin, stdout and stderr all a
 * terminal), through `script`; what it prints comes back as one stream.
 */
export function startCliOnTty(args: string[], options: { env?: Record<string, string | undefined>; stdinFile?: string } = {}): TtyRun {
  const command = [process.execPath, CLI, ...args].map(shellQuote).join(' ') + (options.stdinFile ? ` < ${shellQuote(options.stdinFile)}` : '');
  const child = spawn('script', ['-E', 'never', '-qefc', command, '/dev/null'], {
    env: cliEnv({ TERM: 'xterm-256color', COLUMNS: '120', ...options.env }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  const { check, waitFor } = patternWaiter(() => [output]);
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    check();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const done = new Promise<{ code: number | null; output: string }>((resolve) => child.on('close', (code) => resolve({ code, output })));
  return {
    child,
    output: () => output,
    waitFor,
    type: (text) => void child.stdin!.write(text),
    done,
  };
}

// eslint-disable-next-line no-control-regex
export const ESCAPE = /\u001b/;
