// Asks the bench's moto server about instances through the EC2 Query API.
// moto accepts any signature; the header only names the service and region.
const AUTH =
  'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0';

export async function ec2Call(endpoint, params) {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: AUTH },
    body: new URLSearchParams({ Version: '2016-11-15', ...params }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`EC2 ${params.Action} → ${response.status}: ${text.slice(0, 300)}`);
  return text;
}

const ids = (xml) => [...new Set([...xml.matchAll(/<instanceId>(i-[0-9a-f]+)<\/instanceId>/g)].map((m) => m[1]))];

const LIVE = { 'Filter.2.Name': 'instance-state-name', 'Filter.2.Value.1': 'pending', 'Filter.2.Value.2': 'running' };

/** Ids of live (pending/running) instances tagged ManagedBy=ec2-api, every page of them. */
export async function managedInstanceIds(endpoint) {
  const found = [];
  let token;
  do {
    const xml = await ec2Call(endpoint, {
      Action: 'DescribeInstances',
      'Filter.1.Name': 'tag:ManagedBy',
      'Filter.1.Value.1': 'ec2-api',
      ...LIVE,
      ...(token ? { NextToken: token } : {}),
    });
    found.push(...ids(xml));
    token = /<nextToken>([^<]+)<\/nextToken>/.exec(xml)?.[1];
  } while (token);
  return [...new Set(found)];
}

/** Ids of live instances tagged ManagedBy=ec2-api and TaskId=taskId. */
export async function instanceIdsOfTask(endpoint, taskId) {
  return ids(
    await ec2Call(endpoint, {
      Action: 'DescribeInstances',
      'Filter.1.Name': 'tag:TaskId',
      'Filter.1.Value.1': taskId,
      ...LIVE,
      'Filter.3.Name': 'tag:ManagedBy',
      'Filter.3.Value.1': 'ec2-api',
    }),
  );
}

/**
 * Per task: how many live managed instances carry its TaskId. Missing = 0,
 * duplicate = more than 1; `others` = managed instances of no task given.
 */
export async function instancesPerTask(endpoint, taskIds) {
  const counts = {};
  for (const id of taskIds) counts[id] = (await instanceIdsOfTask(endpoint, id)).length;
  const total = (await managedInstanceIds(endpoint)).length;
  const values = Object.values(counts);
  const sum = values.reduce((a, b) => a + b, 0);
  return {
    managedInstances: total,
    tasksWithOne: values.filter((n) => n === 1).length,
    missing: values.filter((n) => n === 0).length,
    duplicates: values.filter((n) => n > 1).length,
    others: total - sum,
  };
}

/** moto loads its AMI catalogue on first use: do that before anything is timed. */
export async function warmUp(endpoint) {
  await ec2Call(endpoint, {
    Action: 'DescribeImages',
    'Owner.1': 'amazon',
    'Filter.1.Name': 'name',
    'Filter.1.Value.1': 'al2023-ami-2023.*-x86_64',
  });
  await ec2Call(endpoint, { Action: 'DescribeInstances' });
}
