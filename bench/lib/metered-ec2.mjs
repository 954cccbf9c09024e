// A metered EC2 endpoint: an HTTP proxy in front of moto that enforces EC2's
// request buckets ("Request throttling for the Amazon EC2 API") on the Query
// API's Action, as EC2 does per account and Region: a call finding its
// bucket empty gets HTTP 503 RequestLimitExceeded and costs nothing; every
// call and every refusal is counted by action. moto meters nothing; this is
// what the pacer is measured against (bench/README.md, "pacing").
import http from 'node:http';

/** EC2's documented buckets: [capacity, refill per second]. */
export const EC2_BUCKETS = {
  run_instances: [5, 2],
  terminate_instances: [100, 5],
  mutating: [50, 5],
  describe: [100, 20],
};

/** The bucket an Action draws on (as plugins/module_utils/ec2_api_pace.py sorts them). */
export function kindOf(action) {
  if (action === 'RunInstances') return 'run_instances';
  if (action === 'TerminateInstances') return 'terminate_instances';
  if (/^(Describe|Get|List)/.test(action)) return 'describe';
  return 'mutating';
}

const THROTTLED_BODY =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code>' +
  '<Message>Request limit exceeded.</Message></Error></Errors><RequestID>metered-ec2</RequestID></Response>';

class Bucket {
  constructor([capacity, rate], now) {
    this.capacity = capacity;
    this.rate = rate;
    this.tokens = capacity;
    this.at = now;
  }

  /** Takes one token if there is one. */
  tryTake(now) {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * Starts the proxy on a free loopback port in front of `target` (moto's URL).
 * `buckets` overrides EC2_BUCKETS per kind. Returns { url, stats(), reset(), close() }.
 */
export async function startMeteredEc2(target, { buckets = {}, clock = Date.now } = {}) {
  const sizes = { ...EC2_BUCKETS, ...buckets };
  let meters;
  let counts;
  const reset = () => {
    const now = clock();
    meters = Object.fromEntries(Object.entries(sizes).map(([kind, size]) => [kind, new Bucket(size, now)]));
    counts = {};
  };
  reset();
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const query = new URL(req.url ?? '/', 'http://x').searchParams;
      const action = new URLSearchParams(body.toString('utf8')).get('Action') ?? query.get('Action') ?? '(none)';
      const now = clock();
      const count = (counts[action] ??= { calls: 0, throttled: 0, first_at: now, last_at: now, throttled_at: [] });
      count.calls += 1;
      count.last_at = now;
      if (action !== '(none)' && !meters[kindOf(action)].tryTake(now)) {
        count.throttled += 1;
        count.throttled_at.push(now);
        res.writeHead(503, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(THROTTLED_BODY) });
        res.end(THROTTLED_BODY);
        return;
      }
      const forward = http.request(
        { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers, agent },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.on('error', (error) => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`metered-ec2: moto did not answer: ${error.message}`);
      });
      forward.end(body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    /**
     * {Action: {calls, throttled, first_at, last_at, throttled_at}} since the start (or the last reset):
     * calls include the throttled ones; times are clock() values (Date.now() ms).
     */
    stats: () => structuredClone(counts),
    /** Full buckets and zero counts: a phase starts as if the account had been idle. */
    reset,
    close: () =>
      new Promise((resolve) => {
        agent.destroy();
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
