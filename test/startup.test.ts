// Start-up refusals that protect the operator: an exposed address without
// tokens, and a second service on a database file that one already uses.
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { projectRoot } from '../src/config.js';
import { spawnServer, tempDir } from './helpers/harness.js';

const server = (env: Record<string, string>) =>
  execa(process.execPath, [path.join(projectRoot, 'dist', 'server.js')], {
    cwd: projectRoot,
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn', AWS_ENDPOINT_URL: 'http://127.0.0.1:9', ...env },
    reject: false,
    timeout: 30_000,
  });

t.test('refuses a non-loopback HOST without API_TOKENS, and says how to fix it', async (t) => {
  const result = await server({ HOST: '0.0.0.0', EC2_API_DB: path.join(tempDir(), 'x.db') });
  t.equal(result.exitCode, 1);
  t.match(result.stderr, /refusing to listen on 0\.0\.0\.0 without API_TOKENS/);
  t.match(result.stderr, /ALLOW_UNAUTHENTICATED=1/);
});

t.test('ALLOW_UNAUTHENTICATED=1 or tokens let it listen on 0.0.0.0', async (t) => {
  const choices: Record<string, string>[] = [{ ALLOW_UNAUTHENTICATED: '1' }, { API_TOKENS: 'x'.repeat(32) }];
  for (const env of choices) {
    const running = await spawnServer({ HOST: '0.0.0.0', EC2_API_DB: path.join(tempDir(), 'x.db'), AWS_ENDPOINT_URL: 'http://127.0.0.1:9', ...env });
    running.child.kill('SIGTERM');
    t.equal(await running.exited, 0, JSON.stringify(env));
  }
});

t.test('a second service on the same database file refuses to start', async (t) => {
  const db = path.join(tempDir(), 'shared.db');
  const first = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
  t.teardown(() => first.child.kill('SIGKILL'));
  const second = await server({ EC2_API_DB: db });
  t.equal(second.exitCode, 1);
  t.match(second.stderr, /another ec2-api \(pid \d+\) is using/);

  first.child.kill('SIGKILL');
  await first.exited;
  const after = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
  after.child.kill('SIGTERM');
  t.equal(await after.exited, 0, 'once the owner is dead (even by kill -9), a new one starts');
});

t.test('a bad setting stops start-up with a message naming it', async (t) => {
  const result = await server({ EC2_API_CONCURRENCY: 'lots' });
  t.equal(result.exitCode, 1);
  t.match(result.stderr, /EC2_API_CONCURRENCY must be a whole number/);
});
