#!/usr/bin/env node
// Regenerates src/api/openapi.d.ts, the request and response types of the
// API's clients (the command-line client and the console), from the service's
// own OpenAPI document (openapi-typescript).
//
//   npm run openapi:types                  build, start the service, fetch /openapi.json, write src/api/openapi.d.ts
//   node scripts/openapi-types.mjs --check [--from FILE]
//                                          exit 1 if src/api/openapi.d.ts differs from what the document gives
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
const target = path.join(root, 'src', 'api', 'openapi.d.ts');
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
  const source = await generate(document);
  const current = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '';
  const relative = path.relative(root, target);
  if (check) {
    if (source === current) {
      console.log(`${relative} matches the service's OpenAPI document`);
      return 0;
    }
    const a = current.split('\n');
    const b = source.split('\n');
    let line = 0;
    while (line < a.length && a[line] === b[line]) line++;
    console.error(
      `${relative} is out of date with the service's /openapi.json: run \`${REGENERATE}\` and commit it ` +
        `(first difference at line ${line + 1}: checked in ${JSON.stringify(a[line] ?? '<end>')}, ` +
        `generated ${JSON.stringify(b[line] ?? '<end>')})`,
    );
    return 1;
  }
  if (source === current) {
    console.log(`${relative} is up to date`);
  } else {
    fs.writeFileSync(target, source);
    console.log(`wrote ${relative}`);
  }
  return 0;
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
