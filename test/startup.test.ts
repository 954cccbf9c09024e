// Start-up refusals that protect the operator: an exposed address without
// tokens, and a second service on a database file that one already uses
// (also from another PID namespace, as two containers on one volume).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { projectRoot } from '../src/config.js';
import { eventually, spawnServer, tempDir } from './helpers/harness.js';

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

t.test('a second service on the same database file refuses to start, naming the holder; kill -9 of the holder frees it', async (t) => {
  const db = path.join(tempDir(), 'shared.db');
  const first = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
  t.teardown(() => first.child.kill('SIGKILL'));
  const holder = JSON.parse(fs.readFileSync(`${db}.holder`, 'utf8')) as { pid: number; hostname: string; started_at: string };
  t.equal(holder.pid, first.child.pid, 'the holder file names the running service');
  t.equal(holder.hostname, os.hostname());
  const second = await server({ EC2_API_DB: db });
  t.equal(second.exitCode, 1);
  t.match(
    second.stderr,
    `another ec2-api (pid ${first.child.pid} on ${os.hostname()}, started ${holder.started_at}) is using ${db}; stop it, or set EC2_API_DB to another file`,
  );
  t.equal((await fetch(`${first.url}/healthz`)).status, 200, 'the first one runs on');

  first.child.kill('SIGKILL');
  await first.exited;
  const after = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
  after.child.kill('SIGTERM');
  t.equal(await after.exited, 0, 'once the holder is dead (even by kill -9), a new one starts');
  t.notOk(fs.existsSync(`${db}.holder`), 'a clean stop removes the holder file');
});

t.test('two services as PID 1 of their own PID namespaces (two containers on one volume): the second refuses', async (t) => {
  const probe = await execa('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { reject: false });
  if (probe.exitCode !== 0) {
    t.fail(`unshare does not work here (run the tests as root): ${probe.stderr}`);
    return;
  }
  const db = path.join(tempDir(), 'shared.db');
  const inNamespace = (env: Record<string, string>) =>
    // --kill-child: a SIGKILL of unshare kills the service (PID 1 inside) too, as `docker kill` would.
    execa('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', process.execPath, path.join(projectRoot, 'dist', 'server.js')], {
      cwd: projectRoot,
      env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', LOG_FORMAT: 'json', AWS_ENDPOINT_URL: 'http://127.0.0.1:9', EC2_API_DB: db, ...env },
      reject: false,
      all: true,
      buffer: false,
    });
  const first = inNamespace({});
  t.teardown(() => first.kill('SIGKILL'));
  let output = '';
  first.all!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await eventually(() => output.includes('listening on'), 30_000, 'the first service to listen');
  const holder = JSON.parse(fs.readFileSync(`${db}.holder`, 'utf8')) as { pid: number };
  t.equal(holder.pid, 1, 'the first service is PID 1 in its namespace');

  const second = await execa('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, path.join(projectRoot, 'dist', 'server.js')], {
    cwd: projectRoot,
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn', AWS_ENDPOINT_URL: 'http://127.0.0.1:9', EC2_API_DB: db },
    reject: false,
    timeout: 30_000,
  });
  t.equal(second.exitCode, 1, 'the second, PID 1 of another namespace, does not start');
  t.match(second.stderr, /another ec2-api \(pid 1 on [^,]+, started [^)]+\) is using .*shared\.db/);

  first.kill('SIGKILL');
  await first;
  const after = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
  after.child.kill('SIGTERM');
  t.equal(await after.exited, 0, 'once it is killed, the file is free');
});

t.test('a bad setting stops start-up with a message naming it', async (t) => {
  const result = await server({ EC2_API_CONCURRENCY: 'lots' });
  t.equal(result.exitCode, 1);
  t.match(result.stderr, /EC2_API_CONCURRENCY must be a whole number/);
});
