// The OpenAPI document is fit for the clients people generate from it:
// an independent linter (Redocly, recommended rules) finds nothing, with and
// without tokens, and every operation documents its errors with a schema.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { projectRoot } from '../src/config.js';
import { startService, tempDir } from './helpers/harness.js';

const TOKEN = 'd'.repeat(40);

/** A parsed OpenAPI document, walked freely. */
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function documentOf(tokens: boolean): Promise<Json> {
  const service = await startService('http://127.0.0.1:9', { EC2_API_PAUSED: '1', ...(tokens ? { API_TOKENS: TOKEN } : {}) });
  t.teardown(() => service.close());
  const res = await service.app.inject({ url: '/openapi.json', headers: tokens ? { authorization: `Bearer ${TOKEN}` } : {} });
  return res.json() as Json;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];
/** The operations that queue a task. */
const QUEUEING = new Set(['post /create', 'post /create-async', 'get /delete/{ip}', 'get /delete-async/{ip}', 'post /instances', 'delete /instances/{ip}']);
const operations = (doc: Json) =>
  Object.entries(doc.paths as Json).flatMap(([route, item]) =>
    METHODS.filter((method) => (item as Json)[method]).map((method) => ({ route, method, operation: (item as Json)[method] as Json })),
  );

for (const tokens of [false, true]) {
  t.test(`${tokens ? 'with' : 'without'} API_TOKENS`, async (t) => {
    const doc = await documentOf(tokens);

    t.test('redocly lint (recommended rules) finds no error and no warning', async (t) => {
      const file = path.join(tempDir(), 'openapi.json');
      fs.writeFileSync(file, JSON.stringify(doc));
      const redocly = path.join(projectRoot, 'node_modules', '.bin', 'redocly');
      const { stdout, stderr } = await promisify(execFile)(redocly, ['lint', '--extends', 'recommended', '--format', 'summary', file], {
        // No update check or telemetry: CI has no network, and needs none.
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      }).catch((error: { stdout: string; stderr: string }) => error);
      const output = `${stdout}\n${stderr}`;
      t.match(output, /Your API description is valid/, output);
      t.notMatch(output, /^(error|warning) /m, 'no rule reported anything');
    });

    const ids = new Set<string>();
    for (const { route, method, operation } of operations(doc)) {
      const what = `${method.toUpperCase()} ${route}`;
      t.test(what, async (t) => {
        t.type(operation.operationId, 'string', 'has an operationId');
        t.notOk(ids.has(operation.operationId), 'a unique one');
        ids.add(operation.operationId);
        const responses = operation.responses as Json;
        const errors = Object.keys(responses).filter((code) => /^[45]\d\d$/.test(code));
        t.ok(errors.some((code) => code.startsWith('4')), `documents its 4xx (${errors.join(', ')})`);
        for (const code of errors) {
          const schema = responses[code].content?.['application/json']?.schema;
          t.ok(schema, `${code} has a JSON schema`);
          t.ok(responses[code].description, `${code} says what it means`);
        }
        const open = Array.isArray(operation.security) && operation.security.length === 0;
        t.equal(Boolean(responses['401']), tokens && !open, tokens && !open ? '401 for a missing or wrong token' : 'no 401 where no token is needed');
        const queuesATask = QUEUEING.has(`${method} ${route}`);
        t.equal(Boolean(responses['503']) || !queuesATask, true, '503 where a task is queued: shutting down or queue full');
        for (const [code, answer] of Object.entries(responses as Record<string, Json>)) {
          // Each route says what its answers mean: never the generator's filler, nor a bare reason phrase.
          t.notMatch(answer.description, /^(Default Response|OK|Created|Accepted|Not found|Conflict)$/, `${code} has its own description: ${answer.description}`);
        }
        // Every route that changes something (the cross-site rule), and without tokens every one but the open ones (the Host rule).
        const changes = queuesATask || ['cancelTask', 'extendInstance'].includes(operation.operationId);
        t.equal(Boolean(responses['403']), changes || (!tokens && !open), '403 where a web page may be refused');
        const waits = ['post /create', 'get /delete/{ip}'].includes(`${method} ${route}`);
        t.equal(Boolean(responses['502'] && responses['504']) || !waits, true, '502 and 504 where the route waits for its task');
      });
    }

    t.test('the whole document', async (t) => {
      t.ok(ids.size >= 18, `every operation was walked (${ids.size})`);
      for (const operation of QUEUEING) t.ok(ids.size && [...operations(doc)].some((o) => `${o.method} ${o.route}` === operation), `${operation} is there`);
      t.equal(doc.info.license?.identifier, 'MIT');
      t.same(doc.paths['/healthz'].get.security, [], '/healthz is open');
      t.same(doc.security, tokens ? [{ bearerAuth: [] }] : [{}], 'with tokens the bearer scheme applies to every other operation; without, none');
      t.equal(Boolean(doc.components?.securitySchemes?.bearerAuth), tokens, 'the scheme is defined exactly when the server has tokens');
    });
  });
}
