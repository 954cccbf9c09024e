// The command-line client is a client of the published API only: its types
// and vocabulary (src/api/openapi.d.ts, src/api/vocabulary.ts) are what
// scripts/openapi-types.mjs makes of the running app's /openapi.json, and it
// imports nothing of the service.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { projectRoot } from '../src/config.js';
import { startService, tempDir } from './helpers/harness.js';

const TOKEN = 'openapi-check-token-0123456789';

t.test('src/api/openapi.d.ts and vocabulary.ts are what the app\'s /openapi.json gives', async (t) => {
  // As scripts/openapi-types.mjs starts it: paused, an endpoint never contacted, tokens on.
  const service = await startService('http://127.0.0.1:9', { EC2_API_PAUSED: '1', API_TOKENS: TOKEN });
  t.teardown(() => service.close());
  const res = await service.app.inject({ method: 'GET', url: '/openapi.json', headers: { authorization: `Bearer ${TOKEN}` } });
  t.equal(res.statusCode, 200);
  const document = path.join(tempDir(), 'openapi.json');
  fs.writeFileSync(document, res.body);

  let output = '';
  let code = 0;
  try {
    output = execFileSync(process.execPath, [path.join(projectRoot, 'scripts', 'openapi-types.mjs'), '--check', '--from', document], {
      cwd: projectRoot,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    const failed = error as { status: number; stdout: string; stderr: string };
    code = failed.status;
    output = failed.stdout + failed.stderr;
  }
  t.equal(code, 0, output.trim());
});

/** Every module specifier imported under a directory, by file. */
function imports(dir: string): [file: string, specifier: string][] {
  const found: [string, string][] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const file = path.join(entry.parentPath, entry.name);
    const source = fs.readFileSync(file, 'utf8');
    for (const match of source.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      found.push([file, (match[1] ?? match[2])!]);
    }
  }
  return found;
}

t.test('the client imports nothing of the service: only src/cli/, src/api/, Node and its own libraries', async (t) => {
  const cliDir = path.join(projectRoot, 'src', 'cli');
  // src/api holds what the two clients share (the API's types, its generated vocabulary, the streams' events):
  // no code of the service, and nothing but itself, so that it runs in the browser too.
  const apiDir = path.join(projectRoot, 'src', 'api');
  t.same(fs.readdirSync(apiDir).filter((name) => !name.endsWith('.d.ts')).sort(), ['lifecycle.ts', 'vocabulary.ts'], 'src/api holds declarations and the two client modules');
  for (const [file, specifier] of imports(apiDir)) {
    const target = path.resolve(path.dirname(file), specifier);
    t.ok(specifier.startsWith('.') && target.startsWith(apiDir + path.sep), `${path.relative(projectRoot, file)}: ${specifier} stays in src/api`);
  }
  const allowed = new Set(['commander', 'cli-progress', 'openapi-fetch', 'eventsource-parser']);
  const all = imports(cliDir);
  t.ok(all.length > 20, `found the imports (${all.length})`);
  for (const [file, specifier] of all) {
    const where = `${path.relative(projectRoot, file)}: ${specifier}`;
    if (specifier.startsWith('.')) {
      const target = path.resolve(path.dirname(file), specifier);
      t.ok(target.startsWith(cliDir + path.sep) || target.startsWith(apiDir + path.sep), `${where} stays in src/cli or src/api`);
    } else {
      t.ok(specifier.startsWith('node:') || allowed.has(specifier), `${where} is Node's or an allowed package`);
    }
  }
  // Each allowed package is a dependency, so that an installed `ec2-api` has it.
  const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    bin: Record<string, string>;
  };
  for (const name of allowed) t.ok(pkg.dependencies[name], `${name} is in dependencies`);
  t.equal(pkg.bin['ec2-api'], 'dist/cli/main.js', 'package.json bin');
  t.match(fs.readFileSync(path.join(cliDir, 'main.ts'), 'utf8'), /^#!\/usr\/bin\/env node\n/, 'the entry point runs with node');
});

