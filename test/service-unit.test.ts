// deploy/ec2-api.service: systemd accepts it, its sandbox scores an exposure
// of at most 2.0, its stop and restart settings fit the service's shutdown,
// and the service starts from its ExecStart= and environment (tokens and AWS
// credentials as credentials, JSON logs, a private database in the state
// directory) and launches an instance on moto.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { loadConfig } from '../src/config.js';
import { liveInstancesOfTask, startMoto, tempDir, VALID } from './helpers/harness.js';
import { ENV_FILE, environmentFile, prepare, readOnlySystem, serviceSection, serviceValue, startUnit, UNIT_FILE, unitCommand, unitDirs } from './helpers/systemd-unit.js';

/** The unit as systemd-analyze should read it: this machine's node in place of /usr/bin/node (they are one on Debian). */
function unitForThisHost(): string {
  const copy = path.join(tempDir(), 'ec2-api.service');
  fs.writeFileSync(copy, fs.readFileSync(UNIT_FILE, 'utf8').replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
  return copy;
}

t.test('systemd-analyze verify accepts the unit without a warning', async (t) => {
  const result = await execa('systemd-analyze', ['verify', unitForThisHost()], { reject: false });
  t.equal(result.exitCode, 0, result.stderr);
  t.equal(result.stderr, '', 'no unknown key, no unparsable value');
});

t.test('its offline security score is an exposure of at most 2.0', async (t) => {
  const result = await execa('systemd-analyze', ['security', '--offline=yes', unitForThisHost()], { reject: false });
  const overall = /Overall exposure level for ec2-api\.service: (\d+\.\d+)/.exec(result.stdout);
  t.ok(overall, 'systemd-analyze printed an overall exposure', { output: result.stdout + result.stderr });
  const exposure = Number(overall?.[1]);
  t.ok(exposure <= 2.0, `exposure ${exposure} ≤ 2.0`);
  t.comment(`systemd-analyze security --offline=yes: exposure ${exposure}`);
});

t.test('stop and restart settings fit the service', async (t) => {
  const section = serviceSection();
  t.equal(serviceValue('KillMode'), 'mixed', 'SIGTERM to Node alone, SIGKILL to what is left');
  t.equal(serviceValue('Restart'), 'on-failure');
  t.same(section.get('StateDirectory'), ['ec2-api']);
  t.notOk(section.has('MemoryDenyWriteExecute'), 'not set: V8 dies under it');
  t.notMatch(section.get('ExecStart')!.join(' '), /TOKEN|SECRET|KEY/i, 'no secret on the command line');

  // The longest a stop may take: the grace (the env file's, else the default) + 5 s.
  const grace = loadConfig(environmentFile(ENV_FILE)).shutdownGrace;
  const stopSeconds = Number(/^(\d+)s?$/.exec(serviceValue('TimeoutStopSec'))?.[1]);
  t.ok(stopSeconds > grace + 5, `TimeoutStopSec ${stopSeconds} s > grace ${grace} s + 5 s`);
});

t.test('the service starts from the unit, takes its tokens and AWS credentials as credentials, and launches', async (t) => {
  const moto = await startMoto();
  t.teardown(() => moto.stop());
  const dirs = unitDirs();
  const token = 'unit-token-0123456789abcdef';
  prepare(dirs, {
    'api-tokens': `${token}\n`,
    'aws-credentials': '[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n',
  });
  // The one change for a test: moto instead of AWS (never AWS from a test).
  const command = unitCommand(dirs, { AWS_ENDPOINT_URL: moto.url });
  t.notOk('API_TOKENS' in command.env, 'the token is not in the environment');
  const service = await startUnit(command);
  t.teardown(() => service.child.kill('SIGKILL'));
  t.comment(readOnlySystem ? 'the service runs as nobody, on a read-only file system but /tmp' : 'the service runs on a writable file system (no root, or no mount namespaces here)');

  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const refused = await fetch(`${service.url}/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(VALID) });
  t.equal(refused.status, 401, 'without the token from the credential: refused');

  const created = await fetch(`${service.url}/create`, { method: 'POST', headers: auth, body: JSON.stringify(VALID) });
  const body = (await created.json()) as { status: string; task_id: string; ip: string };
  t.equal(created.status, 200, 'POST /create with the token from the credential', { body });
  t.equal(body.status, 'running');
  t.equal(liveInstancesOfTask(moto.url, body.task_id).length, 1, 'one instance on EC2 (moto)');

  const status = await fetch(`${service.url}/status/${body.task_id}`, { headers: auth });
  t.match(await status.json(), { status: 'succeeded', ip: body.ip });

  const db = path.join(dirs.state, 'ec2-api', 'ec2-api.db');
  t.equal(fs.statSync(db).mode & 0o777, 0o600, 'the database is in the state directory, private');

  service.child.kill('SIGTERM');
  t.equal(await service.exited, 0, 'systemctl stop: exits 0', { output: service.stdout().slice(-4000) });
  const lines = service.stdout().trim().split('\n');
  const records = lines.map((line) => {
    try {
      return JSON.parse(line) as { level: number; msg: string };
    } catch {
      return null;
    }
  });
  t.same(records.filter((r) => r === null).length, 0, 'every line on stdout is one JSON object (for journald)');
  t.ok(records.some((r) => r?.msg === 'stopped'), 'the stop is logged');
  t.equal(service.stderr(), '', 'nothing on stderr');
  t.notOk(service.stdout().includes(token), 'the token is never logged');
});
