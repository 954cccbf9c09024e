// An EC2 endpoint in front of moto that records every call's form body and
// can play the parts of EC2 that moto does not: throttling
// (RequestLimitExceeded), eventual consistency (a tag look-up that misses a
// fresh instance) and slow state changes (an instance held in `pending` or
// `shutting-down` for a while).
import http from 'node:http';
import type net from 'node:net';

export interface RecordedCall {
  action: string;
  params: URLSearchParams;
  /** Date.now() when the call arrived. */
  at: number;
}

export interface RecorderOptions {
  /** Answer the first N calls of each named action with RequestLimitExceeded. */
  throttle?: Record<string, number>;
}

const EMPTY_DESCRIBE =
  '<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">' +
  '<requestId>recorder</requestId><reservationSet></reservationSet></DescribeInstancesResponse>';

const STATE_CODES: Record<string, number> = { pending: 0, running: 16, 'shutting-down': 32, terminated: 48, stopping: 64, stopped: 80 };

/** Values of the filter `name` in a DescribeInstances call (Filter.N.Name / Filter.N.Value.M). */
export function filterValues(params: URLSearchParams, name: string): string[] {
  for (const [key, value] of params) {
    const match = /^Filter\.(\d+)\.Name$/.exec(key);
    if (match && value === name) {
      return [...params].filter(([k]) => k.startsWith(`Filter.${match[1]}.Value.`)).map(([, v]) => v);
    }
  }
  return [];
}

/** The value of the instance tag `key` in a RunInstances call's TagSpecifications. */
export function tagValue(params: URLSearchParams, key: string): string | undefined {
  for (const [name, value] of params) {
    const match = /^(TagSpecification\.\d+)\.Tag\.(\d+)\.Key$/.exec(name);
    if (match && value === key && params.get(`${match[1]}.ResourceType`) === 'instance') {
      return params.get(`${match[1]}.Tag.${match[2]}.Value`) ?? undefined;
    }
  }
  return undefined;
}

/** Where the reservation holding this instance is in a DescribeInstances response (moto: one instance each). */
function reservationOf(xml: string, instanceId: string): [number, number] | null {
  const at = xml.indexOf(`<instanceId>${instanceId}</instanceId>`);
  if (at < 0) return null;
  const start = xml.lastIndexOf('<item><reservationId>', at);
  const close = '</instancesSet></item>';
  const end = xml.indexOf(close, at);
  return start < 0 || end < 0 ? null : [start, end + close.length];
}

/**
 * The response as EC2 would give it if the instance were in `state`: with
 * that state, or without the instance when the call's instance-state-name
 * filter does not ask for that state.
 */
function withState(xml: string, params: URLSearchParams, instanceId: string, state: string): string {
  const bounds = reservationOf(xml, instanceId);
  if (!bounds) return xml;
  const [start, end] = bounds;
  const wanted = filterValues(params, 'instance-state-name');
  if (wanted.length && !wanted.includes(state)) return xml.slice(0, start) + xml.slice(end);
  const reservation = xml
    .slice(start, end)
    .replace(/<instanceState>.*?<\/instanceState>/s, `<instanceState><code>${STATE_CODES[state] ?? 0}</code><name>${state}</name></instanceState>`);
  return xml.slice(0, start) + reservation + xml.slice(end);
}

export async function ec2Recorder(target: string, options: RecorderOptions = {}) {
  const recorded: RecordedCall[] = [];
  const throttled = new Map<string, number>();
  const held = new Map<string, { state: string; until: number }>();
  const heldTasks = new Map<string, { state: string; ms: number }>();
  let missTagLookups = 0;

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const params = new URLSearchParams(body.toString());
    const action = params.get('Action') ?? '?';
    recorded.push({ action, params, at: Date.now() });

    const reply = (status: number, xml: string) => {
      res.writeHead(status, { 'content-type': 'text/xml' });
      res.end(xml);
    };
    const limit = options.throttle?.[action] ?? 0;
    if ((throttled.get(action) ?? 0) < limit) {
      throttled.set(action, (throttled.get(action) ?? 0) + 1);
      return reply(
        503,
        '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>RequestLimitExceeded</Code>' +
          '<Message>Request limit exceeded.</Message></Error></Errors><RequestID>recorder</RequestID></Response>',
      );
    }
    if (action === 'DescribeInstances' && missTagLookups > 0 && filterValues(params, 'tag:TaskId').length > 0) {
      missTagLookups--;
      return reply(200, EMPTY_DESCRIBE);
    }

    const headers = Object.fromEntries(
      Object.entries(req.headers).filter(([name]) => name === 'content-type' || name === 'authorization' || name.startsWith('x-amz')),
    ) as Record<string, string>;
    const upstream = await fetch(target, { method: req.method, headers, body: req.method === 'GET' ? undefined : body });
    let xml = await upstream.text();

    if (action === 'RunInstances') {
      const hold = heldTasks.get(tagValue(params, 'TaskId') ?? '');
      const id = /<instanceId>(i-[0-9a-f]+)<\/instanceId>/.exec(xml)?.[1];
      if (hold && id) held.set(id, { state: hold.state, until: Date.now() + hold.ms });
    }
    if (action === 'DescribeInstances') {
      for (const [id, hold] of held) if (Date.now() < hold.until) xml = withState(xml, params, id, hold.state);
    }
    reply(upstream.status, xml);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    /** Every call seen so far, or those of one action. */
    calls: (action?: string) => recorded.filter((call) => action === undefined || call.action === action),
    /** The next `count` DescribeInstances calls with a tag:TaskId filter find nothing, as EC2 may right after a launch. */
    missTagLookups(count = 1) {
      missTagLookups += count;
    },
    /** DescribeInstances reports this instance in `state` for the next `ms`. */
    holdInstance(instanceId: string, state: string, ms: number) {
      held.set(instanceId, { state, until: Date.now() + ms });
    },
    /** The instance launched for this task is reported in `state` for `ms` after its launch. */
    holdTask(taskId: string, state: string, ms: number) {
      heldTasks.set(taskId, { state, ms });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type Ec2Recorder = Awaited<ReturnType<typeof ec2Recorder>>;
