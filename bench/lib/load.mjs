// Load the bench sends: logins that are new on every request (so the service
// must hash each password: it may reuse the hash of an identical username and
// password), the paced status probe, and the check that what the service
// stored really is the SHA-512-crypt hash of what was sent.
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

const JSON_HEADERS = { 'content-type': 'application/json' };
const HERE = path.dirname(fileURLToPath(import.meta.url));

/**
 * A source of logins never seen before in this bench run: usernames
 * `b<tag>_<n>` (valid, never a system account), 16-character passwords.
 */
export function loginSource() {
  const tag = randomBytes(3).toString('hex');
  let n = 0;
  return () => {
    const i = n++;
    const id = i.toString(36);
    return { username: `b${tag}_${id}`, password: `P${tag}-${id.padStart(8, '0')}` };
  };
}

/**
 * autocannon `requests` for POST /create-async with a fresh login per request
 * (`setupRequest`). `accepted` gets the task id of every 202; `sample` (Map
 * task id → login) keeps every `sampleEvery`-th one for verifyHashes().
 */
export function distinctCreateRequests(nextLogin, { accepted, sample, sampleEvery = 50 }) {
  let answered = 0;
  return [
    {
      method: 'POST',
      path: '/create-async',
      headers: JSON_HEADERS,
      setupRequest: (request, context) => {
        const login = nextLogin();
        // One request in flight per connection: the context is this request's until its reply.
        context.login = login;
        return { ...request, body: JSON.stringify(login) };
      },
      onResponse: (status, body, context) => {
        if (status !== 202) return;
        const match = /"task_id":"([0-9a-f-]{36})"/.exec(body);
        if (!match) return;
        accepted.push(match[1]);
        if (answered++ % sampleEvery === 0 && context?.login) sample.set(match[1], context.login);
      },
    },
  ];
}

export function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const r2 = (n) => (n === null ? null : Math.round(n * 100) / 100);

function summarize(values) {
  const s = Float64Array.from(values).sort();
  return {
    p50: r2(percentile(s, 50)),
    p90: r2(percentile(s, 90)),
    p99: r2(percentile(s, 99)),
    max: r2(s.length ? s[s.length - 1] : null),
    mean: r2(s.length ? s.reduce((a, b) => a + b, 0) / s.length : null),
  };
}

/** Runs the paced GET probe (probe-worker.mjs) for `durationMs`; resolves with its summary. */
export function probe(url, { connections = 4, intervalMs = 20, durationMs }) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(path.join(HERE, 'probe-worker.mjs'), { workerData: { url, connections, intervalMs, durationMs } });
    worker.once('message', (m) => {
      const non2xx = Object.entries(m.statusCodes).reduce((sum, [code, n]) => sum + (code >= 200 && code < 300 ? 0 : n), 0);
      resolve({
        connections,
        interval_ms: intervalMs,
        rate_per_s: Math.round((connections * 1000) / intervalMs),
        seconds: r2(m.seconds),
        requests: m.ms.length + m.errors,
        latency_ms: summarize(m.ms),
        // Polls not sent on time because the lane still waited for a reply.
        late_slots: m.lateSlots,
        non2xx,
        errors: m.errors,
        status_codes: m.statusCodes,
      });
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`status probe exited ${code}`));
    });
  });
}

/**
 * Checks stored hashes against the logins sent: each must be the
 * SHA-512-crypt of the password with its own salt (`openssl passwd -6`).
 * `stored` maps task id → { username, password_hash }.
 */
export function verifyHashes(sample, stored, limit = 20) {
  const ids = [...sample.keys()].filter((id) => stored.has(id));
  const picked = [];
  for (let i = 0; i < Math.min(limit, ids.length); i++) picked.push(ids[Math.floor((i * ids.length) / Math.min(limit, ids.length))]);
  let ok = 0;
  const bad = [];
  for (const id of picked) {
    const login = sample.get(id);
    const row = stored.get(id);
    const m = /^\$6\$(?:rounds=(\d+)\$)?([^$]*)\$/.exec(row.password_hash ?? '');
    let good = false;
    if (m && row.username === login.username) {
      const args = ['passwd', '-6', '-salt', m[2], '-stdin'];
      // openssl passwd has no rounds option: a hash with rounds= is checked only for its shape.
      if (m[1]) good = /^\$6\$rounds=\d+\$[./A-Za-z0-9]{0,16}\$[./A-Za-z0-9]{86}$/.test(row.password_hash);
      else good = spawnSync('openssl', args, { input: `${login.password}\n`, encoding: 'utf8' }).stdout.trim() === row.password_hash;
    }
    if (good) ok++;
    else bad.push(id);
  }
  return { checked: picked.length, matching: ok, mismatched: bad.slice(0, 5) };
}
