// Observability end to end, on the real service against a real moto server:
// the OpenAPI document and /docs, Prometheus metrics after a real playbook
// run, /readyz, request ids, and which of these need a token.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import type { FastifyInstance, RouteOptions } from 'fastify';
import pino from 'pino';
import t from 'tap';
import { REDACT } from '../src/app.js';
import { projectRoot } from '../src/config.js';
import { ec2ProbeUrl, Readiness } from '../src/http/readiness.js';
import { VALID, eventuallyAsync, startMoto, startService, tempDir, type TestService } from './helpers/harness.js';

const DEAD_ENDPOINT = 'http://127.0.0.1:9';
const TOKEN = 'o'.repeat(40);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const VERSION = (JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;

interface Registered {
  method: string;
  url: string;
  hidden: boolean;
}

interface Observed {
  service: TestService;
  app: FastifyInstance;
  routes: Registered[];
  lines: string[];
}

const moto = await startMoto();
const started: Observed[] = [];
t.teardown(async () => {
  for (const { service } of started) await service.close();
  await moto.stop();
});

/**
 * The real service, and an app built on it the way server.ts builds it (with
 * the database and a logger), with every route it registers recorded.
 */
async function observed(endpoint: string, env: Record<string, string> = {}): Promise<Observed> {
  const lines: string[] = [];
  const logger = pino({ level: 'info', redact: { paths: REDACT, censor: '[redacted]' } }, { write: (line: string) => void lines.push(line) });
  const routes: Registered[] = [];
  const service = await startService(endpoint, env, {
    logger,
    beforeReady: (app) =>
      app.addHook('onRoute', (route: RouteOptions) => {
        for (const method of [route.method].flat()) routes.push({ method, url: route.url, hidden: Boolean(route.schema?.hide) });
      }),
  });
  const o = { service, app: service.app, routes, lines };
  started.push(o);
  return o;
}

const main = await observed(moto.url);
const get = (o: Observed, url: string, headers: Record<string, string> = {}) => o.app.inject({ method: 'GET', url, headers });

/** A parsed JSON document, walked freely. */
type Json = Record<string, any>;

/** `/status/:id` as OpenAPI writes it: `/status/{id}`. */
const openapiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** What makes an OpenAPI 3.x document valid beyond its JSON Schemas, checked by hand. */
function openapiProblems(doc: Json): string[] {
  const problems: string[] = [];
  if (!/^3\.\d+\.\d+$/.test(String(doc.openapi))) problems.push(`openapi is "${doc.openapi}", not 3.x.y`);
  if (typeof doc.info?.title !== 'string' || typeof doc.info?.version !== 'string') problems.push('info.title and info.version are required');
  const declaredTags = new Set((doc.tags ?? []).map((tag: Json) => tag.name));
  const schemes = new Set(Object.keys(doc.components?.securitySchemes ?? {}));
  const checkSecurity = (where: string, security: Json[] | undefined) => {
    for (const requirement of security ?? []) {
      for (const name of Object.keys(requirement)) if (!schemes.has(name)) problems.push(`${where}: unknown security scheme ${name}`);
    }
  };
  checkSecurity('root', doc.security);
  const operationIds = new Set<string>();
  for (const [route, item] of Object.entries<Json>(doc.paths ?? {})) {
    if (!route.startsWith('/')) problems.push(`path ${route} does not start with /`);
    const templated = [...route.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    for (const [method, op] of Object.entries<Json>(item)) {
      if (!METHODS.includes(method)) continue;
      const where = `${method.toUpperCase()} ${route}`;
      if (op.operationId) {
        if (operationIds.has(op.operationId)) problems.push(`${where}: duplicate operationId`);
        operationIds.add(op.operationId);
      }
      for (const tag of op.tags ?? []) if (!declaredTags.has(tag)) problems.push(`${where}: tag ${tag} is not declared`);
      checkSecurity(where, op.security);
      const params: Json[] = [...(item.parameters ?? []), ...(op.parameters ?? [])];
      for (const p of params) {
        if (typeof p.name !== 'string' || !['path', 'query', 'header', 'cookie'].includes(p.in)) problems.push(`${where}: bad parameter ${JSON.stringify(p)}`);
        if (p.in === 'path' && p.required !== true) problems.push(`${where}: path parameter ${p.name} must be required`);
        if (!p.schema && !p.content) problems.push(`${where}: parameter ${p.name} has no schema`);
      }
      for (const name of templated) {
        if (!params.some((p) => p.in === 'path' && p.name === name)) problems.push(`${where}: {${name}} is not declared as a path parameter`);
      }
      if (op.requestBody && typeof op.requestBody.content !== 'object') problems.push(`${where}: requestBody without content`);
      const responses = Object.entries<Json>(op.responses ?? {});
      if (responses.length === 0) problems.push(`${where}: no responses`);
      for (const [code, response] of responses) {
        if (!/^([1-5]\d\d|[1-5]XX|default)$/.test(code)) problems.push(`${where}: bad status code ${code}`);
        if (typeof response.description !== 'string') problems.push(`${where} ${code}: description is required`);
      }
    }
  }
  // Every $ref points at something in the document.
  const walk = (node: unknown) => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === '$ref' && typeof value === 'string') {
          const target = value.startsWith('#/') ? value.slice(2).split('/').reduce<Json | undefined>((at, part) => at?.[part], doc) : undefined;
          if (target === undefined) problems.push(`unresolved $ref ${value}`);
        } else walk(value);
      }
    }
  };
  walk(doc);
  return problems;
}

/** Every schema in the document (components, parameters, bodies, responses) compiles as JSON Schema 2020-12, the dialect of OpenAPI 3.1. */
function schemaProblems(doc: Json): string[] {
  const ajv = new Ajv2020.default({ strict: false, allErrors: true, validateFormats: false });
  const problems: string[] = [];
  // References into components become references to schemas registered under their own id.
  const local = (schema: unknown) => JSON.parse(JSON.stringify(schema).replaceAll('"#/components/schemas/', '"urn:component:')) as object;
  for (const [name, schema] of Object.entries<Json>(doc.components?.schemas ?? {})) ajv.addSchema({ ...local(schema), $id: `urn:component:${name}` });
  const compile = (where: string, schema: unknown) => {
    try {
      ajv.compile(local(schema));
    } catch (error) {
      problems.push(`${where}: ${(error as Error).message}`);
    }
  };
  for (const [route, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const [method, op] of Object.entries<Json>(item)) {
      if (!METHODS.includes(method)) continue;
      const where = `${method.toUpperCase()} ${route}`;
      for (const p of op.parameters ?? []) if (p.schema) compile(`${where} parameter ${p.name}`, p.schema);
      for (const [type, media] of Object.entries<Json>(op.requestBody?.content ?? {})) if (media.schema) compile(`${where} body ${type}`, media.schema);
      for (const [code, response] of Object.entries<Json>(op.responses ?? {})) {
        for (const [type, media] of Object.entries<Json>(response.content ?? {})) if (media.schema) compile(`${where} ${code} ${type}`, media.schema);
      }
    }
  }
  return problems;
}

t.test('/openapi.json: a valid OpenAPI 3 document with every route the app registered', async (t) => {
  const res = await get(main, '/openapi.json');
  t.equal(res.statusCode, 200);
  t.match(String(res.headers['content-type']), /^application\/json/);
  const doc = res.json() as Json;

  t.same(openapiProblems(doc), [], 'structurally valid OpenAPI');
  t.same(schemaProblems(doc), [], 'every schema is valid JSON Schema');
  t.match(doc.openapi, /^3\./);
  t.match(doc.info, { title: 'ec2-api', version: VERSION, description: /EC2/ });
  t.notOk(doc.components?.securitySchemes, 'without tokens no security scheme is defined (test/openapi.test.ts has the other case)');
  t.same(
    doc.tags.map((tag: Json) => tag.name),
    ['compat', 'tasks', 'instances', 'ops'],
  );

  const visible = main.routes.filter((r) => !r.hidden && r.method !== 'HEAD');
  const hidden = main.routes.filter((r) => r.hidden);
  for (const known of ['/create', '/create-async', '/status/:id', '/delete/:ip', '/delete-async/:ip', '/healthz', '/readyz', '/metrics', '/openapi.json']) {
    t.ok(visible.some((r) => r.url === known), `the app registered ${known} (the route list is complete)`);
  }
  t.ok(hidden.some((r) => r.url.startsWith('/docs')), 'the swagger-ui routes are registered, hidden');

  for (const route of visible) {
    const where = `${route.method} ${route.url}`;
    const op = doc.paths[openapiPath(route.url)]?.[route.method.toLowerCase()] as Json | undefined;
    if (!t.ok(op, `${where} is documented`)) continue;
    t.ok(op!.tags?.length, `${where} has a tag (${op!.tags})`);
    const validated = Boolean(op!.requestBody || op!.parameters?.length);
    if (validated) {
      t.ok(Object.keys(op!.responses).some((code) => /^4/.test(code)), `${where} documents a 4xx answer`);
    }
  }
  const documented = Object.entries<Json>(doc.paths).flatMap(([p, item]) => Object.keys(item).filter((m) => METHODS.includes(m)).map((m) => `${m.toUpperCase()} ${p}`));
  t.same(
    documented.sort(),
    visible.map((r) => `${r.method} ${openapiPath(r.url)}`).sort(),
    'the document lists exactly the visible routes',
  );
  t.notOk(Object.keys(doc.paths).some((p) => p.startsWith('/docs')), 'no swagger-ui route is in the document');

  for (const url of ['/create', '/create-async']) {
    const body = doc.paths[url].post.requestBody;
    t.ok(body?.required, `${url}: the body is required`);
    const schema = body?.content?.['application/json']?.schema as Json;
    t.match(schema, { type: 'object', required: ['username', 'password'], additionalProperties: false }, `${url}: the body schema`);
    t.match(schema?.properties, { username: { type: 'string', pattern: String }, password: { type: 'string', minLength: 8 } });
    t.equal(doc.paths[url].post.tags[0], 'compat');
    t.ok(doc.paths[url].post.responses['400'], `${url}: 400 documented`);
  }
  t.equal(doc.paths['/status/{id}'].get.tags[0], 'compat');
  t.equal(doc.paths['/healthz'].get.tags[0], 'ops');
  t.equal(doc.paths['/metrics'].get.tags[0], 'ops');
  t.ok(doc.paths['/metrics'].get.responses['200'].content['text/plain; version=0.0.4'], '/metrics documents its text format');
  t.match(doc.paths['/readyz'].get.responses, { 200: { description: /Ready/ }, 503: { description: /Not ready/ } });
  t.same(doc.paths['/healthz'].get.security, [], '/healthz is documented as open');
  const createExample = JSON.stringify(doc.paths['/create'].post.requestBody.content['application/json']);
  t.match(createExample, /"username":"suitepad"/, 'the create body carries an example');
});

t.test('/docs: the interactive UI, its assets served by the service', async (t) => {
  const res = await get(main, '/docs');
  t.equal(res.statusCode, 200);
  t.match(String(res.headers['content-type']), /^text\/html/);
  t.match(res.body, /swagger-ui/);
  t.notMatch(res.body, /(src|href)="https?:/, 'no asset from a CDN');
  const bundle = await get(main, '/docs/static/swagger-ui-bundle.js');
  t.equal(bundle.statusCode, 200, 'the bundle is served locally');
  const spec = await get(main, '/docs/json');
  t.equal(spec.statusCode, 200);
  t.equal(spec.json().info.title, 'ec2-api', 'the UI reads the same document');
});

t.test('/metrics after a real POST /create', async (t) => {
  const created = await main.app.inject({ method: 'POST', url: '/create', payload: VALID });
  t.equal(created.statusCode, 200, created.body);
  const taskId = created.json().task_id as string;
  t.equal((await get(main, `/status/${taskId}`)).statusCode, 200);
  t.equal((await get(main, '/nope/whatever')).statusCode, 404);

  // The 'run' report and the response race; the playbook observation comes within moments.
  const text = await eventuallyAsync(async () => {
    const res = await get(main, '/metrics');
    return res.statusCode === 200 && /ec2_api_playbook_duration_seconds_count\{action="create",outcome="ok"\} 1/.test(res.body) && res.body;
  }, 10_000, 'the playbook run in /metrics');
  const res = await get(main, '/metrics');
  t.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);

  t.match(text, /^# TYPE ec2_api_tasks gauge$/m);
  t.match(text, /^ec2_api_tasks\{action="create",status="succeeded"\} 1$/m, 'the succeeded create is counted');
  t.match(text, /^ec2_api_tasks\{action="delete",status="failed"\} 0$/m, 'absent pairs are 0, not missing');
  t.match(text, /^ec2_api_queue_depth 0$/m);
  t.match(text, /^ec2_api_running_playbooks 0$/m);
  t.match(text, /^# TYPE ec2_api_playbook_duration_seconds histogram$/m);
  t.match(text, /^ec2_api_playbook_duration_seconds_bucket\{le="900",action="create",outcome="ok"\} 1$/m);
  t.match(text, /^ec2_api_playbook_duration_seconds_sum\{action="create",outcome="ok"\} [0-9.e+-]+$/m);
  t.match(text, /^ec2_api_http_request_duration_seconds_count\{method="POST",route="\/create",status_code="200"\} 1$/m, 'the request, by route');
  t.match(text, /^ec2_api_http_request_duration_seconds_count\{method="GET",route="\/status\/:id",status_code="200"\} 1$/m, 'by route pattern');
  t.notOk(text.includes(taskId), 'never by raw URL: no task id in any label');
  t.match(text, /route="unmatched",status_code="404"/, 'an unknown URL is one series');
  t.match(text, /^ec2_api_process_cpu_user_seconds_total /m, 'process metrics, prefixed');
  t.match(text, /^ec2_api_nodejs_eventloop_lag_seconds /m);
  t.notMatch(text, /^(process|nodejs)_/m, 'nothing unprefixed');
});

t.test('/readyz: ready against moto', async (t) => {
  const res = await get(main, '/readyz');
  t.equal(res.statusCode, 200, res.body);
  t.match(res.json(), {
    status: 'ready',
    checks: {
      database: { ok: true },
      ansible: { ok: true, version: /\d+\.\d+/ },
      ec2: { ok: true, endpoint: moto.url },
    },
  });
  t.notOk('error' in res.json());
});

t.test('/readyz: 503 naming ec2 when the endpoint is dead; /healthz stays 200', async (t) => {
  const dead = await observed(DEAD_ENDPOINT, { EC2_API_PAUSED: '1' });
  const res = await get(dead, '/readyz');
  t.equal(res.statusCode, 503, res.body);
  t.match(String(res.headers['content-type']), /^application\/json/);
  const body = res.json();
  t.match(body, {
    status: 'not_ready',
    error: /ec2/,
    checks: { database: { ok: true }, ansible: { ok: true }, ec2: { ok: false, endpoint: DEAD_ENDPOINT, error: /127\.0\.0\.1:9: ECONNREFUSED/ } },
  });
  t.notMatch(body.error, /database|ansible/, 'only the failing check is named');
  t.notMatch(res.body, new RegExp(projectRoot), 'no internal path');
  t.equal((await get(dead, '/healthz')).statusCode, 200, 'liveness does not depend on EC2');
});

t.test('readiness: ansible-playbook runs at most once a minute; failures say what to do without paths', async (t) => {
  const dir = tempDir();
  const calls = path.join(dir, 'calls');
  const fake = path.join(dir, 'ansible-playbook');
  fs.writeFileSync(fake, `#!/bin/sh\necho x >> '${calls}'\necho 'ansible-playbook [core 9.8.7]'\necho '  config file = None'\n`, { mode: 0o755 });
  const base = { tasks: main.service.tasks, ec2Endpoint: moto.url };
  const readiness = new Readiness({ ...base, ansiblePlaybook: fake });
  const [first, second] = await Promise.all([readiness.check(), readiness.check()]);
  const third = await readiness.check();
  for (const report of [first, second, third]) t.match(report.checks.ansible, { ok: true, version: 'core 9.8.7' });
  t.equal(fs.readFileSync(calls, 'utf8').trim().split('\n').length, 1, 'one run for three checks');

  const expired = new Readiness({ ...base, ansiblePlaybook: fake, ansibleCacheSeconds: 0 });
  await expired.check();
  await expired.check();
  t.equal(fs.readFileSync(calls, 'utf8').trim().split('\n').length, 3, 'asked again once the cache expires');

  const missing = await new Readiness({ ...base, ansiblePlaybook: path.join(dir, 'no-such-ansible') }).check();
  t.equal(missing.ready, false);
  t.match(missing.checks.ansible, { ok: false, error: /not found.*EC2_API_ANSIBLE_PLAYBOOK/ });
  t.notOk(missing.checks.ansible.error!.includes(dir), 'the error names no path');

  // An endpoint that accepts connections but never answers: not reachable, after the timeout.
  const connections: net.Socket[] = [];
  const silent = net.createServer((socket) => void connections.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => silent.close(resolve)));
  const silentUrl = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}/`;
  const startedAt = Date.now();
  const hung = await new Readiness({ ...base, ansiblePlaybook: fake, ec2Endpoint: silentUrl, ec2TimeoutMs: 300 }).check();
  t.match(hung.checks.ec2, { ok: false, endpoint: silentUrl, error: /no answer within 0\.3 s/ });
  t.ok(Date.now() - startedAt < 5_000, 'the probe gives up at its timeout, not when the silent server does (never)');
  for (const socket of connections) socket.destroy();

  t.equal(ec2ProbeUrl({ endpointUrl: null, region: 'eu-west-1' }), 'https://ec2.eu-west-1.amazonaws.com/', 'real AWS: the regional endpoint (not called here)');
  t.equal(ec2ProbeUrl({ endpointUrl: moto.url, region: 'eu-west-1' }), moto.url);
});

t.test('X-Request-Id: honoured when well-formed, else generated; always echoed and logged', async (t) => {
  const given = 'client-42.retry_1';
  const echoed = await get(main, '/healthz', { 'x-request-id': given });
  t.equal(echoed.headers['x-request-id'], given, 'a valid id is echoed');
  t.ok(main.lines.some((line) => JSON.parse(line).reqId === given), 'and is the reqId of the log lines');

  const fresh = await get(main, '/healthz');
  t.match(String(fresh.headers['x-request-id']), UUID, 'none given: a UUID');
  const other = await get(main, '/healthz');
  t.not(other.headers['x-request-id'], fresh.headers['x-request-id'], 'a new one per request');

  for (const bad of ['a'.repeat(65), 'has space', 'semi;colon', 'ünïcode', '']) {
    const res = await get(main, '/healthz', { 'x-request-id': bad });
    t.match(String(res.headers['x-request-id']), UUID, `"${bad.slice(0, 10)}…" is replaced`);
  }
  t.equal((await get(main, '/healthz', { 'x-request-id': 'b'.repeat(64) })).headers['x-request-id'], 'b'.repeat(64), '64 characters are fine');
  const notFound = await get(main, '/nope', { 'x-request-id': given });
  t.equal(notFound.headers['x-request-id'], given, 'on errors too');
});

t.test('with API_TOKENS: /metrics, /readyz, /openapi.json and /docs need the token, /healthz does not', async (t) => {
  const secured = await observed(DEAD_ENDPOINT, { EC2_API_PAUSED: '1', API_TOKENS: TOKEN });
  const auth = { authorization: `Bearer ${TOKEN}` };
  for (const url of ['/metrics', '/readyz', '/openapi.json', '/docs', '/docs/json']) {
    const res = await get(secured, url);
    t.equal(res.statusCode, 401, `${url} without a token`);
    t.match(res.json(), { error: /authentication required/ });
    t.ok(res.headers['x-request-id'], 'the 401 carries a request id');
  }
  const metrics = await get(secured, '/metrics', auth);
  t.equal(metrics.statusCode, 200, '/metrics with the token');
  t.match(metrics.body, /ec2_api_queue_depth/);
  t.equal((await get(secured, '/healthz')).statusCode, 200, '/healthz needs no token');

  const doc = (await get(secured, '/openapi.json', auth)).json() as Json;
  t.same(doc.security, [{ bearerAuth: [] }], 'the document says a token is needed');
  t.same(doc.paths['/healthz'].get.security, [], 'but not for /healthz');
  t.ok(doc.paths['/metrics'].get.responses['401'], 'protected routes document 401');
  t.notOk(doc.paths['/healthz'].get.responses['401'], '/healthz does not');
  t.notOk(secured.lines.join('').includes(TOKEN), 'the token is not logged');
});
