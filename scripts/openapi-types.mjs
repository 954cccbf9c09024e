#!/usr/bin/env node
// Regenerates, from the service's own OpenAPI document, what the API's two
// clients (the command-line client and the console) know of it:
// src/api/openapi.d.ts, the request and response types (openapi-typescript),
// and src/api/vocabulary.ts, the words and rules they offer and check before
// asking (the statuses, actions and instance states; the username and
// password rules), taken from the document's schemas.
//
//   npm run openapi:types                  build, start the service, fetch /openapi.json, write both files
//   node scripts/openapi-types.mjs --check [--from FILE]
//                                          exit 1 if either file differs from what the document gives
//   node scripts/openapi-types.mjs --from FILE
//                                          generate from a saved document instead of a running service
//
// The service is started as `npm start` would run it, but paused (no
// playbook runs), on a throwaway database, against an EC2 endpoint it never
// contacts, and with a bearer token: the document then carries the 401
// answers that the client must handle against a protected deployment.
// test/cli-openapi.test.ts runs --check against the app built from source.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString, COMMENT_HEADER } from 'openapi-typescript';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REGENERATE = 'npm run openapi:types';

const HEADER =
  COMMENT_HEADER.replace(
    ' */',
    ` * Generated from the service's /openapi.json by scripts/openapi-types.mjs;\n * regenerate with \`${REGENERATE}\`.\n */`,
  );

/** The TypeScript source openapi-typescript makes of an OpenAPI document. */
export async function generate(document) {
  const ast = await openapiTS(document, { silent: true });
  return HEADER + astToString(ast);
}

/** The string values a schema allows (`enum`, `const`, and unions of them). */
function literals(schema) {
  if (schema.const !== undefined) return [schema.const];
  if (schema.enum) return schema.enum.filter((value) => value !== null);
  return (schema.anyOf ?? schema.oneOf ?? []).flatMap(literals);
}

function json(document, route, method, status) {
  const operation = document.paths?.[route]?.[method];
  const content = status === undefined ? operation?.requestBody?.content : operation?.responses?.[status]?.content;
  const schema = content?.['application/json']?.schema;
  if (!schema) throw new Error(`the document has no JSON ${status ?? 'request body'} for ${method.toUpperCase()} ${route}`);
  return schema;
}

/** src/api/vocabulary.ts: the lists and rules of the document that the clients use at run time. */
export function vocabulary(document) {
  const task = json(document, '/tasks/{id}', 'get', '200').properties;
  const login = json(document, '/create-async', 'post').properties;
  const list = (name, values, type) =>
    `export const ${name} = ${JSON.stringify(values).replaceAll(',', ', ')} as const satisfies readonly ${type}[];`;
  const rule = (schema) =>
    JSON.stringify(
      Object.fromEntries(['pattern', 'minLength', 'maxLength', 'description'].filter((key) => schema[key] !== undefined).map((key) => [key, schema[key]])),
      null,
      2,
    );
  return `/**
 * Generated from the service's /openapi.json by scripts/openapi-types.mjs;
 * regenerate with \`${REGENERATE}\`. Do not make direct changes to the file.
 */

// The words and rules of the API that its clients (src/cli and src/console)
// offer and check before asking, taken from the schemas of the document.
import type { Exhaustive, InstanceState, TaskAction, TaskStatus } from './documents.js';

/** A task's \`status\`. */
${list('STATUSES', literals(task.status), 'TaskStatus')}
/** A task's \`action\`. */
${list('ACTIONS', literals(task.action), 'TaskAction')}
/** A task's \`instance_state\` when it is known. */
${list('INSTANCE_STATES', literals(task.instance_state), 'InstanceState')}

/** The new login's name (\`username\` of POST /create and POST /instances). */
export const USERNAME = ${rule(login.username)} as const;

/** The new login's password. The pattern uses \\P{…}: match it with the \`u\` flag. */
export const PASSWORD = ${rule(login.password)} as const;

// The lists above name every member of the API's types (a build fails otherwise).
const complete: [
  Exhaustive<(typeof STATUSES)[number], TaskStatus>,
  Exhaustive<(typeof ACTIONS)[number], TaskAction>,
  Exhaustive<(typeof INSTANCE_STATES)[number], InstanceState>,
] = [true, true, true];
void complete;
`;
}

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Builds the service and asks the running server for its document. */
async function documentFromService() {
  const build = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
    cwd: root,
    stdio: 'inherit',
  });
  // tsc still emits when it reports errors; the client may not compile until its types are regenerated.
  if (build.status !== 0) console.error('openapi-types: tsc reported errors (above); using what it emitted');

  const port = await freePort();
  const token = randomBytes(24).toString('hex');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ec2-api-openapi-'));
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (/^(AWS_|EC2_API_|API_TOKENS$)/.test(name)) delete env[name];
  const child = spawn(process.execPath, [path.join(root, 'dist', 'server.js')], {
    cwd: root,
    env: {
      ...env,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'error',
      EC2_API_DB: path.join(dir, 'ec2-api.db'),
      EC2_API_PAUSED: '1',
      AWS_ENDPOINT_URL: 'http://127.0.0.1:9', // never contacted: nothing runs while paused
      AWS_ACCESS_KEY_ID: 'unused',
      AWS_SECRET_ACCESS_KEY: 'unused',
      AWS_REGION: 'us-east-1',
      API_TOKENS: token,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the service exited (code ${child.exitCode}) before answering`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/openapi.json`, { headers: { authorization: `Bearer ${token}` } });
        if (res.ok) return await res.json();
        throw new Error(`GET /openapi.json answered ${res.status}`);
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(argv) {
  const check = argv.includes('--check');
  const from = argv.includes('--from') ? argv[argv.indexOf('--from') + 1] : undefined;
  const document = from ? JSON.parse(fs.readFileSync(from, 'utf8')) : await documentFromService();
  const files = [
    [path.join(root, 'src', 'api', 'openapi.d.ts'), await generate(document)],
    [path.join(root, 'src', 'api', 'vocabulary.ts'), vocabulary(document)],
  ];
  let stale = 0;
  for (const [target, source] of files) {
    const current = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '';
    const relative = path.relative(root, target);
    if (source === current) {
      console.log(check ? `${relative} matches the service's OpenAPI document` : `${relative} is up to date`);
    } else if (check) {
      const a = current.split('\n');
      const b = source.split('\n');
      let line = 0;
      while (line < a.length && a[line] === b[line]) line++;
      console.error(
        `${relative} is out of date with the service's /openapi.json: run \`${REGENERATE}\` and commit it ` +
          `(first difference at line ${line + 1}: checked in ${JSON.stringify(a[line] ?? '<end>')}, ` +
          `generated ${JSON.stringify(b[line] ?? '<end>')})`,
      );
      stale++;
    } else {
      fs.writeFileSync(target, source);
      console.log(`wrote ${relative}`);
    }
  }
  return stale ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      console.error(`openapi-types: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(2);
    },
  );
}
