// The one place configuration is read. `loadConfig(env)` is pure: it reads
// only the object it is given (and the one file it may name, API_TOKENS_FILE),
// so tests build configs without touching process.env, and every name in the
// README's table is parsed here.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type CloudMode = 'auto' | 'aws' | 'local';
export type LogFormat = 'auto' | 'json' | 'pretty';

export interface Config {
  port: number;
  host: string;
  /** EC2_API_DB as a file path: the SQLite database (unused for data when `dbUrl` is set). */
  dbPath: string;
  /**
   * EC2_API_DB as a postgres:// or postgresql:// URL: nodes share that
   * database (docs/multi-node.md); null for SQLite. Never logged whole: it
   * may hold a password (redactUrl).
   */
  dbUrl: string | null;
  /** EC2_API_RUNS_DIR: the private folder of the playbooks' run folders (default: beside the SQLite file). */
  runsDir: string;
  /** EC2_API_LEASE_SECONDS: how long a node holds a claimed task without renewing it (PostgreSQL only). */
  leaseSeconds: number;
  /** EC2_API_NODE_ID: this node's name in the leases it holds (default: host, pid and a random part). */
  nodeId: string;
  /** EC2_API_DB_SYNC: SQLite's synchronous level; FULL also survives power loss. */
  dbSync: 'FULL' | 'NORMAL';
  cloud: CloudMode;
  /** AWS_ENDPOINT_URL: an EC2 endpoint to use instead of AWS; wins over `cloud`. */
  endpointUrl: string | null;
  region: string;
  /** API_TOKENS: each token with the name its tasks are recorded under (`name=token`; a bare token is `default`). */
  apiTokens: ApiToken[];
  /** EC2_API_ADMINS: token names that see and act on every task and instance, not only their own. */
  admins: string[];
  allowUnauthenticated: boolean;
  /**
   * EC2_API_ALLOWED_HOSTS: host names (as URLs spell them: lowercase, IPv6 in
   * brackets, no port) that requests may name in `Host` when there are no
   * API_TOKENS, besides the loopback names and HOST: a reverse proxy's name.
   */
  allowedHosts: string[];
  /** EC2_API_DEFAULT_TTL: seconds a create's instance lives when the create gives no `ttl`; null: no expiry. */
  defaultTtl: number | null;
  /** EC2_API_MAX_INSTANCES: live managed instances plus queued creates allowed at once; null: no cap. */
  maxInstances: number | null;
  concurrency: number;
  batchSize: number;
  /** Milliseconds a lone task waits for others to join its batch. */
  batchDelayMs: number;
  /** Seconds before a playbook run is killed. */
  taskTimeout: number;
  /** Seconds a sync route waits for its task before answering 504. */
  syncWait: number;
  /** Seconds running playbooks get to finish on SIGTERM/SIGINT. */
  shutdownGrace: number;
  /** Seconds POST /tasks/<id>/cancel waits for a running task to stop and be cleaned up before answering 202. */
  cancelWait: number;
  maxQueued: number;
  maxAttempts: number;
  idempotencyTtl: number;
  /** EC2_API_RETENTION in seconds: how long a task is kept after it ends; 0 keeps every task. */
  retentionSeconds: number;
  paused: boolean;
  logLevel: string;
  /** LOG_FORMAT: `json` (one JSON object a line), `pretty` (pino-pretty), or `auto`: pretty on a terminal, else JSON. */
  logFormat: LogFormat;
  /** Where playbooks/, inventory/ and ansible.cfg live. */
  projectDir: string;
  playbookDir: string;
  ansiblePlaybook: string;
  /** The Python that runs `python -m moto.server` for the local emulator. */
  emulatorPython: string;
  /** EC2_API_RATE_*: the client-side token buckets EC2 calls are paced to. */
  pacing: PacingLimits;
}

/** The kinds of EC2 call metered apart (docs/pacing.md). */
export const CALL_KINDS = ['run_instances', 'terminate_instances', 'mutating', 'describe'] as const;
export type CallKind = (typeof CALL_KINDS)[number];

export interface BucketSize {
  /** Tokens the bucket holds when full: the burst EC2 allows. */
  capacity: number;
  /** Tokens added per second. */
  refillPerSecond: number;
}

export type PacingLimits = Record<CallKind, BucketSize>;

/**
 * Each kind's setting and default: EC2's documented buckets ("Request
 * throttling for the Amazon EC2 API"). Accounts with raised limits set them
 * as "capacity/refill per second". The modules read the same names when run
 * by hand (plugins/module_utils/ec2_api_pace.py).
 */
export const RATE_SETTINGS: Record<CallKind, { name: string; fallback: string }> = {
  run_instances: { name: 'EC2_API_RATE_RUN_INSTANCES', fallback: '5/2' },
  terminate_instances: { name: 'EC2_API_RATE_TERMINATE_INSTANCES', fallback: '100/5' },
  mutating: { name: 'EC2_API_RATE_MUTATING', fallback: '50/5' },
  describe: { name: 'EC2_API_RATE_DESCRIBE', fallback: '100/20' },
};

export interface ApiToken {
  name: string;
  token: string;
}

/** The name of a bare API_TOKENS entry, and of every request when there are no tokens. */
export const DEFAULT_OWNER = 'default';
/** A token's name: what tasks record as `created_by` and EC2_API_ADMINS lists. */
export const TOKEN_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
/** A lifetime in seconds: a minute to 30 days (the bounds of `ttl` and EC2_API_DEFAULT_TTL). */
export const TTL_MIN = 60;
export const TTL_MAX = 30 * 86_400;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The repository root, found from this file (src/ or dist/ alike). */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

/** A whole number in bounds, or null when unset (the setting is off). */
function optionalInteger(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number | null {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? null : integer(env, name, min, min, max);
}

/** A comma-separated list of token names. */
function names(raw: string): string[] {
  const list = raw
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name.length > 0);
  const bad = list.findIndex((name) => !TOKEN_NAME_PATTERN.test(name));
  if (bad >= 0) throw new ConfigError(`EC2_API_ADMINS: entry ${bad + 1} is not a token name (letters, digits, "_", "." or "-", at most 64)`);
  return list;
}

function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (raw === '' || raw === '0' || raw === 'false' || raw === 'no') return false;
  if (raw === '1' || raw === 'true' || raw === 'yes') return true;
  throw new ConfigError(`${name} must be 1 or 0, got "${env[name]}"`);
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3_600, d: 86_400 };
/** The longest retention accepted: ten years, far beyond any need, well within a Date. */
const MAX_DURATION_SECONDS = 3_650 * 86_400;

/** A duration such as `90s`, `15m`, `12h` or `30d`, in seconds; a bare `0` means none. */
function duration(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const match = /^\s*(\d+)\s*([smhd])?\s*$/.exec(raw);
  const seconds = match && (match[2] ? Number(match[1]) * DURATION_UNITS[match[2]]! : Number(match[1]) === 0 ? 0 : NaN);
  if (seconds === null || !Number.isSafeInteger(seconds) || seconds > MAX_DURATION_SECONDS) {
    throw new ConfigError(`${name} must be a whole number with a unit s, m, h or d (e.g. 30d or 12h, at most 3650d), or 0 to keep every task, got "${raw}"`);
  }
  return seconds;
}

function endpoint(env: NodeJS.ProcessEnv): string | null {
  const raw = env.AWS_ENDPOINT_URL?.trim();
  if (!raw) return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`AWS_ENDPOINT_URL must be a URL such as http://127.0.0.1:5001, got "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`AWS_ENDPOINT_URL must be http:// or https://, got "${raw}"`);
  }
  return raw.replace(/\/+$/, '');
}

/**
 * API_TOKENS, or the file API_TOKENS_FILE names (systemd's LoadCredential=
 * puts it in $CREDENTIALS_DIRECTORY, so the tokens stay out of the
 * environment and of every child's): tokens separated by commas or lines.
 */
/**
 * API_TOKENS (or API_TOKENS_FILE): entries separated by commas (or lines),
 * each `name=token` or a bare token (named `default`). An entry is named only
 * when the text before its first "=" is a name and at least 16 characters
 * follow it, so a bare base64 token ending in "=" padding stays a bare token.
 * A token is never echoed in an error.
 */
function tokens(env: NodeJS.ProcessEnv): ApiToken[] {
  const file = env.API_TOKENS_FILE?.trim();
  if (file && env.API_TOKENS?.trim()) {
    throw new ConfigError('API_TOKENS and API_TOKENS_FILE are both set: keep one of them');
  }
  let raw = env.API_TOKENS ?? '';
  if (file) {
    try {
      raw = fs.readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError(`API_TOKENS_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)}); check the path and that this user may read it`);
    }
  }
  const tokens = raw
    .split(/[,\n]/)
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0)
    .map((entry): ApiToken => {
      const at = entry.indexOf('=');
      const name = entry.slice(0, at);
      const token = entry.slice(at + 1);
      return at > 0 && TOKEN_NAME_PATTERN.test(name) && token.length >= 16 ? { name, token } : { name: DEFAULT_OWNER, token: entry };
    });
  const name = file ? `API_TOKENS_FILE (${file})` : 'API_TOKENS';
  if (file && tokens.length === 0) throw new ConfigError(`${name} holds no token: put one token a line in it (try: openssl rand -hex 32)`);
  if (tokens.some(({ token }) => token.length < 16)) {
    throw new ConfigError(`${name}: every token must be at least 16 characters (try: openssl rand -hex 32)`);
  }
  return tokens;
}

function bucketSize(env: NodeJS.ProcessEnv, kind: CallKind): BucketSize {
  const { name, fallback } = RATE_SETTINGS[kind];
  const raw = env[name]?.trim() || fallback;
  const match = /^(\d+)\s*\/\s*(\d+(?:\.\d+)?)$/.exec(raw);
  const capacity = Number(match?.[1]);
  const refillPerSecond = Number(match?.[2]);
  if (!match || capacity < 1 || capacity > 100_000 || refillPerSecond <= 0 || refillPerSecond > 10_000) {
    throw new ConfigError(
      `${name} must be "capacity/refill per second" (whole capacity 1 to 100000, refill above 0), e.g. "${fallback}" (EC2's default), got "${env[name]}"`,
    );
  }
  return { capacity, refillPerSecond };
}

/** A host as URLs spell it (lowercase, IPv6 in brackets, IPv4 canonical), without its port; null when `value` is not host[:port]. */
export function hostName(value: string): string | null {
  const raw = value.trim();
  if (raw === '' || /[/?#@\\\s]/.test(raw)) return null;
  // A bare IPv6 address (HOST=::1) has more than one colon and no brackets.
  const bracketed = !raw.startsWith('[') && raw.split(':').length > 2 ? `[${raw}]` : raw;
  try {
    return new URL(`http://${bracketed}`).hostname || null;
  } catch {
    return null;
  }
}

function allowedHosts(env: NodeJS.ProcessEnv): string[] {
  return (env.EC2_API_ALLOWED_HOSTS ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => {
      const name = hostName(entry);
      if (!name) {
        throw new ConfigError(
          `EC2_API_ALLOWED_HOSTS must list host names such as ec2.example.com, separated by commas (no scheme or path), got "${entry}"`,
        );
      }
      return name;
    });
}

/** EC2_API_DB as a postgres:// URL, else null; any other URL is refused (it would become a folder named after its scheme). */
function dbUrl(env: NodeJS.ProcessEnv): string | null {
  const raw = env.EC2_API_DB?.trim() || '';
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw)?.[1];
  if (!scheme) return null;
  if (/^postgres(ql)?$/i.test(scheme)) {
    // Checked here so that a typo is a sentence at start, not a driver's stack; not echoed: it may hold a password.
    try {
      new URL(raw);
    } catch {
      throw new ConfigError(`EC2_API_DB is not a valid ${scheme}:// URL; write it as postgres://user@host:5432/database (the password in PGPASSWORD)`);
    }
    return raw;
  }
  throw new ConfigError(
    `EC2_API_DB must be the path of the SQLite file (default ./data/ec2-api.db) or a postgres:// URL, got a ${scheme}:// URL; ` +
      'give a file path, or a postgres:// URL for nodes that share PostgreSQL',
  );
}

/** EC2_API_DB as a file path (the default when it is a PostgreSQL URL: the runs folder is still beside it). */
function dbPath(env: NodeJS.ProcessEnv): string {
  const raw = env.EC2_API_DB?.trim() || '';
  if (!raw || dbUrl(env)) return path.resolve('./data/ec2-api.db');
  return path.resolve(raw);
}

function dbSync(env: NodeJS.ProcessEnv): 'FULL' | 'NORMAL' {
  const raw = (env.EC2_API_DB_SYNC?.trim() || 'FULL').toUpperCase();
  if (raw !== 'FULL' && raw !== 'NORMAL') throw new ConfigError(`EC2_API_DB_SYNC must be FULL or NORMAL, got "${env.EC2_API_DB_SYNC}"`);
  return raw;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const cloud = (env.EC2_API_CLOUD?.trim() || 'auto') as CloudMode;
  if (!['auto', 'aws', 'local'].includes(cloud)) {
    throw new ConfigError(`EC2_API_CLOUD must be auto, aws or local, got "${env.EC2_API_CLOUD}"`);
  }
  const logLevel = env.LOG_LEVEL?.trim() || 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const logFormat = (env.LOG_FORMAT?.trim().toLowerCase() || 'auto') as LogFormat;
  if (!['auto', 'json', 'pretty'].includes(logFormat)) {
    throw new ConfigError(`LOG_FORMAT must be json, pretty or auto, got "${env.LOG_FORMAT}"`);
  }
  const apiTokens = tokens(env);
  const admins = names(env.EC2_API_ADMINS ?? '');
  // Not echoed: a token pasted here by mistake must not reach the log.
  const unknownAdmin = admins.findIndex((name) => !apiTokens.some((token) => token.name === name));
  if (unknownAdmin >= 0) {
    throw new ConfigError(
      `EC2_API_ADMINS: entry ${unknownAdmin + 1} is not the name of any API_TOKENS entry; name a token (name=token) or remove it`,
    );
  }
  const taskTimeout = integer(env, 'EC2_API_TASK_TIMEOUT', 900, 1, 86_400);
  const projectDir = env.EC2_API_PROJECT_DIR?.trim() || projectRoot;

  return {
    port: integer(env, 'PORT', 5000, 0, 65_535),
    host: env.HOST?.trim() || '127.0.0.1',
    dbPath: dbPath(env),
    dbUrl: dbUrl(env),
    runsDir: env.EC2_API_RUNS_DIR?.trim() ? path.resolve(env.EC2_API_RUNS_DIR.trim()) : `${dbPath(env)}.runs`,
    leaseSeconds: integer(env, 'EC2_API_LEASE_SECONDS', 30, 2, 30),
    nodeId: env.EC2_API_NODE_ID?.trim() || `${os.hostname()}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`,
    dbSync: dbSync(env),
    cloud,
    endpointUrl: endpoint(env),
    region: env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim() || 'us-east-1',
    apiTokens,
    admins,
    allowUnauthenticated: flag(env, 'ALLOW_UNAUTHENTICATED'),
    allowedHosts: allowedHosts(env),
    defaultTtl: optionalInteger(env, 'EC2_API_DEFAULT_TTL', TTL_MIN, TTL_MAX),
    maxInstances: optionalInteger(env, 'EC2_API_MAX_INSTANCES', 1, 1_000_000),
    concurrency: integer(env, 'EC2_API_CONCURRENCY', 2, 1, 64),
    // One module run takes a whole batch for a few ms of CPU a task beyond its fixed start-up
    // (bench/README.md, Results): large batches cost less than many small ones.
    batchSize: integer(env, 'EC2_API_BATCH_SIZE', 100, 1, 500),
    // The longest a burst keeps a batch open (a lone task waits 50 ms, scheduler.ts QUIET_MS):
    // short next to the seconds a playbook takes.
    batchDelayMs: integer(env, 'EC2_API_BATCH_DELAY_MS', 250, 0, 10_000),
    taskTimeout,
    // A sync call waits as long as a run may take, plus time to queue.
    syncWait: integer(env, 'EC2_API_SYNC_WAIT', taskTimeout + 60, 1, 86_400),
    shutdownGrace: integer(env, 'EC2_API_SHUTDOWN_GRACE', 30, 0, 3_600),
    // Long enough for a canceled create's clean-up (a terminate playbook) in the common case.
    cancelWait: integer(env, 'EC2_API_CANCEL_WAIT', 120, 0, 3_600),
    maxQueued: integer(env, 'EC2_API_MAX_QUEUED', 10_000, 1, 1_000_000),
    maxAttempts: integer(env, 'EC2_API_MAX_ATTEMPTS', 3, 1, 100),
    idempotencyTtl: integer(env, 'EC2_API_IDEMPOTENCY_TTL', 86_400, 60, 30 * 86_400),
    retentionSeconds: duration(env, 'EC2_API_RETENTION', 30 * 86_400),
    paused: flag(env, 'EC2_API_PAUSED'),
    logLevel,
    logFormat,
    projectDir,
    playbookDir: path.resolve(projectDir, env.EC2_API_PLAYBOOK_DIR?.trim() || 'playbooks'),
    ansiblePlaybook: env.EC2_API_ANSIBLE_PLAYBOOK?.trim() || fromVenv(projectDir, 'ansible-playbook'),
    emulatorPython: env.EC2_API_EMULATOR_PYTHON?.trim() || fromVenv(projectDir, 'python3'),
    pacing: Object.fromEntries(CALL_KINDS.map((kind) => [kind, bucketSize(env, kind)])) as PacingLimits,
  };
}

/** A tool from the project's .venv (made by `npm run setup` when the system lacks it), else from PATH. */
function fromVenv(projectDir: string, tool: string): string {
  const candidate = path.join(projectDir, '.venv', 'bin', tool);
  return fs.existsSync(candidate) ? candidate : tool;
}

/** The full path of a command as PATH finds it, or null. */
export function onPath(command: string, pathVariable = process.env.PATH ?? ''): string | null {
  if (command.includes('/')) return fs.existsSync(command) ? path.resolve(command) : null;
  for (const dir of pathVariable.split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, command);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * The one rule for which Python runs the EC2 modules: the Python that runs
 * ansible-playbook (inventory/hosts.yml sets ansible_python_interpreter to
 * ansible_playbook_python), read from the shebang of the ansible-playbook
 * this config runs — so a .venv install, a Debian package and a pip install
 * each get their own. The setup script and the AWS credential check use it
 * (playbook runs get the same Python through the inventory); null when
 * ansible-playbook is not installed.
 */
export function ec2Python(config: Pick<Config, 'ansiblePlaybook'>, pathVariable = process.env.PATH ?? ''): string | null {
  const playbook = onPath(config.ansiblePlaybook, pathVariable);
  if (!playbook) return null;
  let firstLine = '';
  try {
    firstLine = fs.readFileSync(playbook, 'utf8').slice(0, 256).split('\n')[0] ?? '';
  } catch {
    return null;
  }
  if (!firstLine.startsWith('#!')) return null;
  const words = firstLine.slice(2).trim().split(/\s+/);
  // `#!/usr/bin/env python3` names a command to find on PATH; `#!/usr/bin/python3` the interpreter itself.
  const interpreter = path.basename(words[0] ?? '') === 'env' ? words.find((word, i) => i > 0 && !word.startsWith('-')) : words[0];
  return interpreter ? (onPath(interpreter, pathVariable) ?? interpreter) : null;
}

/** True when HOST (or a host name as URLs spell it) is a loopback name or address, where running without tokens is safe. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** The refusal the contract asks for: no tokens on an exposed address. */
export function checkExposure(config: Config): void {
  if (config.apiTokens.length === 0 && !isLoopback(config.host) && !config.allowUnauthenticated) {
    throw new ConfigError(
      `refusing to listen on ${config.host} without API_TOKENS: anyone who can reach it could launch ` +
        'instances on your account. Set API_TOKENS=<token>[,<token>…] (e.g. `openssl rand -hex 32`), ' +
        'or HOST=127.0.0.1, or ALLOW_UNAUTHENTICATED=1 if something in front of it authenticates.',
    );
  }
}
