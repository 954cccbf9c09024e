// GET /readyz: can this process do its work right now? The database answers,
// ansible-playbook runs, and the EC2 endpoint answers HTTP. /healthz stays
// the cheap liveness check; this one does I/O, so ansible (a Python start-up,
// about a second) is asked at most once a minute.
import { execFile } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { childEnvironment } from '../ansible/runner.js';
import type { TaskService } from '../tasks/service.js';

/** Seconds an `ansible-playbook --version` answer is reused (a Python start-up costs about a second). */
export const ANSIBLE_CACHE_SECONDS = 60;
/** Milliseconds the EC2 endpoint gets to answer. */
export const EC2_TIMEOUT_MS = 2_000;

export interface CheckResult {
  ok: boolean;
  error?: string;
}

export interface ReadinessReport {
  ready: boolean;
  checks: {
    database: CheckResult;
    ansible: CheckResult & { version?: string };
    ec2: CheckResult & { endpoint: string };
  };
}

export interface ReadinessOptions {
  /** Its database answers `SELECT 1`. */
  tasks: TaskService;
  /** The ansible-playbook to run `--version` on. */
  ansiblePlaybook: string;
  /** What to GET: the configured endpoint, or https://ec2.<region>.amazonaws.com/ for AWS. */
  ec2Endpoint: string;
  /** Seconds an ansible answer is reused. */
  ansibleCacheSeconds?: number;
  /** Milliseconds to wait for the EC2 endpoint. */
  ec2TimeoutMs?: number;
  /** Told about failures, with the details kept out of the response. */
  log?: { warn(obj: object, msg?: string): void; info?(obj: object, msg?: string): void };
}

/** The EC2 endpoint readiness probes: the configured one, else the region's public one. */
export function ec2ProbeUrl(cloud: { endpointUrl: string | null; region: string }): string {
  return cloud.endpointUrl ?? `https://ec2.${cloud.region}.amazonaws.com/`;
}

export class Readiness {
  private ansible: { at: number; result: Promise<ReadinessReport['checks']['ansible']> } | undefined;
  private readonly failing = new Map<string, boolean>();

  constructor(private readonly options: ReadinessOptions) {}

  async check(): Promise<ReadinessReport> {
    const [database, ansible, ec2] = await Promise.all([this.database(), this.ansibleVersion(), this.ec2()]);
    return { ready: database.ok && ansible.ok && ec2.ok, checks: { database, ansible, ec2 } };
  }

  private async database(): Promise<CheckResult> {
    try {
      await this.options.tasks.ping();
      this.report('database', null);
      return { ok: true };
    } catch (err) {
      const error = `the database does not answer: ${(err as Error).message}`;
      this.report('database', error);
      return { ok: false, error };
    }
  }

  private ansibleVersion(): Promise<ReadinessReport['checks']['ansible']> {
    const maxAge = (this.options.ansibleCacheSeconds ?? ANSIBLE_CACHE_SECONDS) * 1000;
    // The monotonic clock: a wall clock set back would keep an answer (a failure too) for as long.
    if (!this.ansible || performance.now() - this.ansible.at >= maxAge) {
      this.ansible = { at: performance.now(), result: this.runAnsibleVersion() };
    }
    return this.ansible.result;
  }

  private runAnsibleVersion(): Promise<ReadinessReport['checks']['ansible']> {
    const { ansiblePlaybook } = this.options;
    return new Promise((resolve) => {
      const env = childEnvironment({ ANSIBLE_NOCOLOR: '1' }); // as for playbook runs: secrets stay out
      execFile(ansiblePlaybook, ['--version'], { timeout: 20_000, env, encoding: 'utf8' }, (err, stdout, stderr) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException).code;
          // The answer names no path; the log (for the operator) does.
          const error =
            code === 'ENOENT'
              ? 'ansible-playbook not found (set EC2_API_ANSIBLE_PLAYBOOK, or run npm run setup)'
              : err.killed
                ? 'ansible-playbook --version did not answer within 20 s'
                : `ansible-playbook --version failed (exit ${String(code ?? err.signal ?? 'unknown')})`;
          this.report('ansible', error, { ansiblePlaybook, stderr: stderr.trim().split('\n').slice(-3).join('\n') });
          resolve({ ok: false, error });
          return;
        }
        // "ansible-playbook [core 2.16.3]" (or "ansible-playbook 2.9.27" on old releases)
        const first = stdout.split('\n', 1)[0]!.trim();
        const version = /^ansible-playbook\s+\[?(.*?)\]?$/.exec(first)?.[1] ?? first;
        this.report('ansible', null, { version });
        resolve({ ok: true, version });
      });
    });
  }

  private async ec2(): Promise<ReadinessReport['checks']['ec2']> {
    const endpoint = this.options.ec2Endpoint;
    const timeout = this.options.ec2TimeoutMs ?? EC2_TIMEOUT_MS;
    const failure = await httpAnswers(endpoint, timeout);
    this.report('ec2', failure, { endpoint });
    return failure ? { ok: false, endpoint, error: `cannot reach the EC2 endpoint ${endpoint}: ${failure}` } : { ok: true, endpoint };
  }

  /** Logs a check when it starts failing, and when it recovers: not at every probe. */
  private report(check: string, failure: string | null, fields: object = {}): void {
    const failing = failure !== null;
    if (failing === (this.failing.get(check) ?? false)) return;
    this.failing.set(check, failing);
    if (failing) this.options.log?.warn({ check, error: failure, ...fields }, `readiness: ${check} check failing`);
    else this.options.log?.info?.({ check, ...fields }, `readiness: ${check} check passing again`);
  }
}

/**
 * Null when `url` gives any HTTP answer within `timeoutMs` (even a 403 without
 * credentials: the endpoint is reachable), else why not. node:http rather
 * than fetch, which refuses some ports outright (fetch's "bad ports").
 */
function httpAnswers(url: string, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    let request: http.ClientRequest | undefined;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const done = (result: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request?.destroy();
      resolve(result);
    };
    try {
      const get = url.startsWith('https:') ? https.get : http.get;
      request = get(url, { headers: { 'user-agent': 'ec2-api-readiness' } }, (response) => {
        response.resume();
        done(null);
      });
      request.on('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
      timer = setTimeout(() => done(`no answer within ${timeoutMs / 1000} s`), timeoutMs);
    } catch (error) {
      done((error as Error).message);
    }
  });
}
