import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { checkExposure, ConfigError, ec2Python, hostName, isLoopback, loadConfig, projectRoot } from '../src/config.js';

/** The ConfigError that loadConfig throws for this environment (fails the test when none). */
function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

const TOKEN_A = 'a'.repeat(32);
const TOKEN_B = 'b0123456789abcdef';

t.test('defaults match the contract', async (t) => {
  const config = loadConfig({});
  t.equal(config.port, 5000);
  t.equal(config.host, '127.0.0.1');
  t.match(config.dbPath, /data\/ec2-api\.db$/);
  t.equal(config.cloud, 'auto');
  t.equal(config.endpointUrl, null);
  t.equal(config.region, 'us-east-1');
  t.same(config.apiTokens, []);
  t.equal(config.paused, false);
  t.equal(config.logLevel, 'info');
  t.equal(config.dbSync, 'FULL', 'every commit fsynced by default');
  t.equal(loadConfig({ EC2_API_DB_SYNC: 'normal' }).dbSync, 'NORMAL');
  t.throws(() => loadConfig({ EC2_API_DB_SYNC: 'OFF' }), ConfigError);
});

t.test('defaults of the operational settings', async (t) => {
  const config = loadConfig({});
  t.equal(config.allowUnauthenticated, false);
  t.equal(config.concurrency, 2);
  t.equal(config.batchSize, 100);
  t.equal(config.batchDelayMs, 250);
  t.equal(config.taskTimeout, 900);
  t.equal(config.syncWait, 960, 'sync wait defaults to the task timeout plus 60 s');
  t.equal(config.shutdownGrace, 30);
  t.equal(config.cancelWait, 120);
  t.equal(config.maxQueued, 10_000);
  t.equal(config.maxAttempts, 3);
  t.equal(config.idempotencyTtl, 86_400);
  t.equal(config.retentionSeconds, 30 * 86_400);
  t.equal(config.projectDir, projectRoot);
  t.equal(config.playbookDir, path.join(projectRoot, 'playbooks'));
  t.match(config.ansiblePlaybook, /ansible-playbook$/);
  t.match(config.emulatorPython, /python3$/);
});

t.test('PORT', async (t) => {
  t.equal(loadConfig({ PORT: '8080' }).port, 8080);
  t.equal(loadConfig({ PORT: '0' }).port, 0, '0 = any free port');
  t.equal(loadConfig({ PORT: '65535' }).port, 65_535);
  t.equal(loadConfig({ PORT: '  ' }).port, 5000, 'blank means the default');
  for (const bad of ['65536', '-1', '80.5', 'http', '5000abc']) {
    const error = configError({ PORT: bad });
    t.match(error.message, /^PORT must be a whole number from 0 to 65535/, `PORT=${bad} is refused`);
    t.ok(error.message.includes(`"${bad}"`), `the message quotes the bad value ${bad}`);
  }
});

t.test('HOST', async (t) => {
  t.equal(loadConfig({ HOST: '0.0.0.0' }).host, '0.0.0.0');
  t.equal(loadConfig({ HOST: ' ::1 ' }).host, '::1', 'trimmed');
  t.equal(loadConfig({ HOST: '' }).host, '127.0.0.1', 'empty means the default');
});

t.test('EC2_API_DB is resolved to an absolute path', async (t) => {
  const relative = loadConfig({ EC2_API_DB: 'var/tasks.db' }).dbPath;
  t.ok(path.isAbsolute(relative), `${relative} is absolute`);
  t.equal(relative, path.join(process.cwd(), 'var', 'tasks.db'));
  t.equal(loadConfig({ EC2_API_DB: '/srv/ec2/x.db' }).dbPath, '/srv/ec2/x.db');
  t.equal(loadConfig({ EC2_API_DB: ' /srv/ec2/y.db ' }).dbPath, '/srv/ec2/y.db', 'trimmed');
  t.equal(loadConfig({}).dbPath, path.join(process.cwd(), 'data', 'ec2-api.db'));
});

t.test('EC2_API_DB: a postgres:// URL names the shared database; any other URL is refused without echoing it (it may hold a password)', async (t) => {
  const cwd = process.cwd();
  for (const url of ['postgres://app:s3cret-pw@db.example:5432/ec2', 'postgresql://localhost/ec2', 'POSTGRES://db/ec2?sslmode=verify-full']) {
    t.equal(loadConfig({ EC2_API_DB: ` ${url} ` }).dbUrl, url, `${url.split(':')[0]}:// is PostgreSQL`);
  }
  t.equal(loadConfig({}).dbUrl, null, 'SQLite by default');
  t.equal(loadConfig({ EC2_API_DB: 'postgres://db/ec2' }).runsDir, path.join(cwd, 'data', 'ec2-api.db.runs'), 'run folders stay local');
  t.equal(loadConfig({ EC2_API_RUNS_DIR: '/srv/runs' }).runsDir, '/srv/runs');
  t.equal(loadConfig({}).leaseSeconds, 30, 'a lease lasts 30 s by default');
  t.match(configError({ EC2_API_LEASE_SECONDS: '60' }).message, 'EC2_API_LEASE_SECONDS must be a whole number from 2 to 30');
  t.match(configError({ EC2_API_DB: 'postgres://app:s3cret-pw@[bad' }).message, /EC2_API_DB is not a valid postgres:\/\/ URL/);
  t.notMatch(configError({ EC2_API_DB: 'postgres://app:s3cret-pw@[bad' }).message, 's3cret-pw', 'a bad URL is not echoed');
  for (const [value, scheme] of [
    ['mysql://app:s3cret-pw@db.example/ec2', 'mysql'],
    ['sqlite:///srv/ec2/x.db', 'sqlite'],
    ['file://data/x.db', 'file'],
  ] as const) {
    const error = configError({ EC2_API_DB: value });
    t.match(error.message, `EC2_API_DB must be the path of the SQLite file (default ./data/ec2-api.db) or a postgres:// URL, got a ${scheme}:// URL`, value);
    t.match(error.message, /give a file path/);
    t.notMatch(error.message, 's3cret-pw', 'the value is not echoed');
  }
  t.equal(loadConfig({ EC2_API_DB: 'data/postgres.db' }).dbPath, path.join(cwd, 'data', 'postgres.db'), 'a path is still a path');
  t.equal(loadConfig({ EC2_API_DB: './a:b/x.db' }).dbPath, path.join(cwd, 'a:b', 'x.db'), 'a colon without // is a path');
});

t.test('the server started with an unreachable EC2_API_DB=postgres://… exits with a sentence, never its password, and makes no folder', async (t) => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'ec2-api-db-url-'));
  const result = spawnSync(process.execPath, [path.join(projectRoot, 'dist', 'server.js')], {
    cwd,
    env: { ...process.env, PORT: '0', AWS_ENDPOINT_URL: 'http://127.0.0.1:9', EC2_API_DB: 'postgres://app:s3cret-pw@127.0.0.1:1/ec2' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.equal(result.status, 1, 'it exits 1');
  t.match(result.stderr + result.stdout, /cannot use the PostgreSQL database at postgres:\/\/app:\*\*\*@127\.0\.0\.1:1\/ec2/);
  t.notMatch(result.stderr + result.stdout, 's3cret-pw', 'the password is not written out');
  t.same(fs.readdirSync(cwd), [], 'nothing was made where it ran (it used to make a folder named postgres:)');
});

t.test('EC2_API_ALLOWED_HOSTS: host names as URLs spell them', async (t) => {
  t.same(loadConfig({}).allowedHosts, [], 'none by default');
  t.same(loadConfig({ EC2_API_ALLOWED_HOSTS: ' ec2.example.com, Proxy.Example.org:8443 ,,[::1]' }).allowedHosts, ['ec2.example.com', 'proxy.example.org', '[::1]'], 'trimmed, lowercased, port dropped');
  for (const bad of ['https://ec2.example.com', 'ec2.example.com/api', 'user@ec2.example.com', 'two words']) {
    t.match(configError({ EC2_API_ALLOWED_HOSTS: `ok.example, ${bad}` }).message, `EC2_API_ALLOWED_HOSTS must list host names such as ec2.example.com, separated by commas (no scheme or path), got "${bad}"`);
  }
});

t.test('hostName: the host of a Host header or a setting, as URLs spell it', async (t) => {
  t.equal(hostName('LocalHost:5000'), 'localhost');
  t.equal(hostName('::1'), '[::1]', 'a bare IPv6 address (HOST=::1)');
  t.equal(hostName('[::1]:5000'), '[::1]');
  t.equal(hostName('127.1'), '127.0.0.1', 'IPv4 in its canonical form');
  t.equal(hostName('0x7f.0.0.1:80'), '127.0.0.1');
  for (const bad of ['', 'a b', 'evil.example/x', 'user@host', 'host:port', '[::1']) t.equal(hostName(bad), null, `"${bad}" is not a host`);
});

t.test('EC2_API_CLOUD', async (t) => {
  t.equal(loadConfig({ EC2_API_CLOUD: 'aws' }).cloud, 'aws');
  t.equal(loadConfig({ EC2_API_CLOUD: 'local' }).cloud, 'local');
  t.equal(loadConfig({ EC2_API_CLOUD: 'auto' }).cloud, 'auto');
  t.equal(loadConfig({ EC2_API_CLOUD: ' local ' }).cloud, 'local', 'trimmed');
  t.equal(loadConfig({ EC2_API_CLOUD: '' }).cloud, 'auto');
  for (const bad of ['gcp', 'AWS', 'moto', 'aws,local']) {
    const error = configError({ EC2_API_CLOUD: bad });
    t.equal(error.name, 'ConfigError');
    t.match(error.message, /^EC2_API_CLOUD must be auto, aws or local/, `EC2_API_CLOUD=${bad} is refused`);
    t.ok(error.message.includes(bad), 'the message quotes the bad value');
  }
});

t.test('AWS_ENDPOINT_URL', async (t) => {
  t.equal(loadConfig({ AWS_ENDPOINT_URL: 'http://127.0.0.1:5001' }).endpointUrl, 'http://127.0.0.1:5001');
  t.equal(loadConfig({ AWS_ENDPOINT_URL: 'http://127.0.0.1:5001/' }).endpointUrl, 'http://127.0.0.1:5001', 'trailing slash stripped');
  t.equal(loadConfig({ AWS_ENDPOINT_URL: 'https://ec2.example.com///' }).endpointUrl, 'https://ec2.example.com', 'all trailing slashes stripped');
  t.equal(loadConfig({ AWS_ENDPOINT_URL: ' http://moto:5000/ ' }).endpointUrl, 'http://moto:5000', 'trimmed');
  t.equal(loadConfig({ AWS_ENDPOINT_URL: 'https://proxy.example.com/ec2/' }).endpointUrl, 'https://proxy.example.com/ec2');
  t.equal(loadConfig({ AWS_ENDPOINT_URL: '' }).endpointUrl, null, 'empty means none');
  t.equal(loadConfig({ AWS_ENDPOINT_URL: '   ' }).endpointUrl, null, 'blank means none');

  for (const bad of ['ftp://127.0.0.1:5001', 'file:///etc/passwd', 'ws://127.0.0.1']) {
    t.match(configError({ AWS_ENDPOINT_URL: bad }).message, /^AWS_ENDPOINT_URL must be http:\/\/ or https:\/\//, `${bad} is refused`);
  }
  for (const bad of ['127.0.0.1:5001x', 'not a url', 'http//missing-colon']) {
    t.match(configError({ AWS_ENDPOINT_URL: bad }).message, /^AWS_ENDPOINT_URL must be a URL such as http:\/\/127\.0\.0\.1:5001/, `${bad} is refused`);
  }
});

t.test('AWS_REGION and AWS_DEFAULT_REGION', async (t) => {
  t.equal(loadConfig({ AWS_REGION: 'eu-west-1' }).region, 'eu-west-1');
  t.equal(loadConfig({ AWS_DEFAULT_REGION: 'eu-central-1' }).region, 'eu-central-1');
  t.equal(loadConfig({ AWS_REGION: 'eu-west-1', AWS_DEFAULT_REGION: 'eu-central-1' }).region, 'eu-west-1', 'AWS_REGION wins');
  t.equal(loadConfig({ AWS_REGION: ' ', AWS_DEFAULT_REGION: 'ap-south-1' }).region, 'ap-south-1', 'a blank AWS_REGION falls through');
  t.equal(loadConfig({ AWS_REGION: '' }).region, 'us-east-1');
});

t.test('API_TOKENS', async (t) => {
  const bare = (token: string) => ({ name: 'default', token });
  t.same(loadConfig({ API_TOKENS: TOKEN_A }).apiTokens, [bare(TOKEN_A)], 'a bare token is named default');
  t.same(loadConfig({ API_TOKENS: ` ${TOKEN_A} , ${TOKEN_B} ,, ` }).apiTokens, [bare(TOKEN_A), bare(TOKEN_B)], 'split on commas, trimmed, empties dropped');
  t.same(
    loadConfig({ API_TOKENS: `alice=${TOKEN_A}, ci.bot-2=${TOKEN_B}` }).apiTokens,
    [{ name: 'alice', token: TOKEN_A }, { name: 'ci.bot-2', token: TOKEN_B }],
    'name=token entries are named',
  );
  const base64 = 'QUJDREVGR0hJSktMTU5PUA==';
  t.same(loadConfig({ API_TOKENS: base64 }).apiTokens, [bare(base64)], 'a bare base64 token with "=" padding stays bare');
  t.same(loadConfig({ API_TOKENS: `a b=${TOKEN_A}` }).apiTokens, [bare(`a b=${TOKEN_A}`)], 'text before "=" that is no name: a bare token');
  t.match(configError({ API_TOKENS: 'alice=short' }).message, /^API_TOKENS: every token must be at least 16/, 'a named token too short is refused');
  t.same(loadConfig({ API_TOKENS: ' , ' }).apiTokens, [], 'only separators = no tokens');
  t.equal(loadConfig({ API_TOKENS: 'x'.repeat(16) }).apiTokens.length, 1, '16 characters is enough');

  const short = 'fifteen-chars-x'; // 15 characters
  const error = configError({ API_TOKENS: `${TOKEN_A},${short}` });
  t.match(error.message, /^API_TOKENS: every token must be at least 16 characters/, 'one short token refuses them all');
  t.notOk(error.message.includes(short), 'the refused token is not echoed');
  t.notOk(error.message.includes(TOKEN_A), 'the good token is not echoed');
});

t.test('API_TOKENS_FILE: the tokens from a file (systemd LoadCredential), one a line or comma-separated', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ec2-api-tokens-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'api-tokens');
  fs.writeFileSync(file, `${TOKEN_A}\n\n  ${TOKEN_B}  \n`, { mode: 0o600 });
  t.same(loadConfig({ API_TOKENS_FILE: file }).apiTokens.map((entry) => entry.token), [TOKEN_A, TOKEN_B], 'one a line, trimmed, blank lines dropped');
  fs.writeFileSync(file, `${TOKEN_A},${TOKEN_B}`);
  t.same(loadConfig({ API_TOKENS_FILE: file }).apiTokens.map((entry) => entry.token), [TOKEN_A, TOKEN_B], 'or comma-separated, as in API_TOKENS');

  t.match(configError({ API_TOKENS_FILE: file, API_TOKENS: TOKEN_A }).message, /^API_TOKENS and API_TOKENS_FILE are both set: keep one of them$/);
  const missing = path.join(dir, 'nope');
  t.match(configError({ API_TOKENS_FILE: missing }).message, `API_TOKENS_FILE: cannot read ${missing} (ENOENT); check the path`);
  fs.writeFileSync(file, '\n \n');
  t.match(configError({ API_TOKENS_FILE: file }).message, /holds no token: put one token a line in it/, 'an empty file is a mistake, not "no tokens"');
  fs.writeFileSync(file, `${TOKEN_A}\nfifteen-chars-x\n`);
  const short = configError({ API_TOKENS_FILE: file });
  t.match(short.message, `API_TOKENS_FILE (${file}): every token must be at least 16 characters`);
  t.notOk(short.message.includes(TOKEN_A), 'no token is echoed');
  fs.writeFileSync(file, `alice=${TOKEN_A}\n${TOKEN_B}\n`);
  t.same(loadConfig({ API_TOKENS_FILE: file }).apiTokens, [{ name: 'alice', token: TOKEN_A }, { name: 'default', token: TOKEN_B }], 'named entries too');
});

t.test('EC2_API_ADMINS', async (t) => {
  t.same(loadConfig({}).admins, []);
  t.same(loadConfig({ API_TOKENS: `alice=${TOKEN_A},bob=${TOKEN_B}`, EC2_API_ADMINS: ' bob ' }).admins, ['bob']);
  t.same(loadConfig({ API_TOKENS: TOKEN_A, EC2_API_ADMINS: 'default' }).admins, ['default'], 'a bare token can be made admin by its name');
  const error = configError({ API_TOKENS: `alice=${TOKEN_A}`, EC2_API_ADMINS: TOKEN_B });
  t.match(error.message, /^EC2_API_ADMINS: entry 1 is not the name of any API_TOKENS entry/, 'a name no token has is refused');
  t.notOk(error.message.includes(TOKEN_B), 'what was given is not echoed (it may be a token pasted by mistake)');
  t.match(configError({ API_TOKENS: `alice=${TOKEN_A}`, EC2_API_ADMINS: 'al ice' }).message, /^EC2_API_ADMINS: entry 1 is not a token name/);
});

t.test('EC2_API_DEFAULT_TTL and EC2_API_MAX_INSTANCES: off when unset, bounded when set', async (t) => {
  t.equal(loadConfig({}).defaultTtl, null);
  t.equal(loadConfig({ EC2_API_DEFAULT_TTL: ' ' }).defaultTtl, null);
  t.equal(loadConfig({ EC2_API_DEFAULT_TTL: '7200' }).defaultTtl, 7200);
  t.match(configError({ EC2_API_DEFAULT_TTL: '59' }).message, /^EC2_API_DEFAULT_TTL must be a whole number from 60 to 2592000/);
  t.match(configError({ EC2_API_DEFAULT_TTL: '2592001' }).message, /^EC2_API_DEFAULT_TTL must be a whole number from 60 to 2592000/);
  t.equal(loadConfig({}).maxInstances, null);
  t.equal(loadConfig({ EC2_API_MAX_INSTANCES: '5' }).maxInstances, 5);
  t.match(configError({ EC2_API_MAX_INSTANCES: '0' }).message, /^EC2_API_MAX_INSTANCES must be a whole number from 1/);
});

t.test('ALLOW_UNAUTHENTICATED', async (t) => {
  t.equal(loadConfig({ ALLOW_UNAUTHENTICATED: '1' }).allowUnauthenticated, true);
  t.equal(loadConfig({ ALLOW_UNAUTHENTICATED: '0' }).allowUnauthenticated, false);
  t.match(configError({ ALLOW_UNAUTHENTICATED: 'sure' }).message, /^ALLOW_UNAUTHENTICATED must be 1 or 0, got "sure"/);
});

t.test('whole-number settings and their bounds', async (t) => {
  const cases: [name: string, key: keyof ReturnType<typeof loadConfig>, min: number, max: number][] = [
    ['EC2_API_CONCURRENCY', 'concurrency', 1, 64],
    ['EC2_API_TASK_TIMEOUT', 'taskTimeout', 1, 86_400],
    ['EC2_API_BATCH_SIZE', 'batchSize', 1, 500],
    ['EC2_API_SYNC_WAIT', 'syncWait', 1, 86_400],
    ['EC2_API_SHUTDOWN_GRACE', 'shutdownGrace', 0, 3_600],
    ['EC2_API_CANCEL_WAIT', 'cancelWait', 0, 3_600],
    ['EC2_API_MAX_QUEUED', 'maxQueued', 1, 1_000_000],
    ['EC2_API_MAX_ATTEMPTS', 'maxAttempts', 1, 100],
    ['EC2_API_IDEMPOTENCY_TTL', 'idempotencyTtl', 60, 30 * 86_400],
  ];
  for (const [name, key, min, max] of cases) {
    t.equal(loadConfig({ [name]: String(min) })[key], min, `${name}=${min} (lowest) accepted`);
    t.equal(loadConfig({ [name]: String(max) })[key], max, `${name}=${max} (highest) accepted`);
    t.equal(loadConfig({ [name]: ` ${min + 1} ` })[key], min + 1, `${name} is trimmed`);
    t.equal(loadConfig({ [name]: '' })[key], loadConfig({})[key], `${name}= (empty) means the default`);
    for (const bad of [String(min - 1), String(max + 1), '2.5', 'ten']) {
      const error = configError({ [name]: bad });
      t.equal(
        error.message,
        `${name} must be a whole number from ${min} to ${max}, got "${bad}"`,
        `${name}=${bad} is refused with a message naming the variable`,
      );
    }
  }
});

t.test('EC2_API_RETENTION: a duration with a unit, 30 days by default, 0 keeps everything', async (t) => {
  t.equal(loadConfig({}).retentionSeconds, 30 * 86_400, 'default 30d');
  const cases: [string, number][] = [
    ['90s', 90],
    ['15m', 900],
    ['12h', 43_200],
    ['7d', 604_800],
    [' 30d ', 2_592_000],
    ['0', 0],
    ['0d', 0],
    ['3650d', 3_650 * 86_400],
    ['', 30 * 86_400],
  ];
  for (const [raw, seconds] of cases) t.equal(loadConfig({ EC2_API_RETENTION: raw }).retentionSeconds, seconds, `"${raw}"`);
  for (const bad of ['30', '1w', '-1d', '1.5h', 'd', '30 days', '3651d', 'forever']) {
    t.equal(
      configError({ EC2_API_RETENTION: bad }).message,
      `EC2_API_RETENTION must be a whole number with a unit s, m, h or d (e.g. 30d or 12h, at most 3650d), or 0 to keep every task, got "${bad}"`,
      `"${bad}" is refused with a sentence`,
    );
  }
});

t.test('EC2_API_SYNC_WAIT defaults to the task timeout plus 60 s', async (t) => {
  t.equal(loadConfig({ EC2_API_TASK_TIMEOUT: '100' }).syncWait, 160);
  t.equal(loadConfig({ EC2_API_TASK_TIMEOUT: '1' }).syncWait, 61);
  t.equal(loadConfig({ EC2_API_TASK_TIMEOUT: '100', EC2_API_SYNC_WAIT: '30' }).syncWait, 30, 'an explicit value wins');
});

t.test('EC2_API_PAUSED', async (t) => {
  for (const on of ['1', 'true', 'yes', 'TRUE', ' Yes ']) {
    t.equal(loadConfig({ EC2_API_PAUSED: on }).paused, true, `"${on}" pauses`);
  }
  for (const off of ['0', 'false', 'no', 'NO', '', ' ']) {
    t.equal(loadConfig({ EC2_API_PAUSED: off }).paused, false, `"${off}" does not pause`);
  }
  for (const bad of ['2', 'paused', 'on']) {
    const error = configError({ EC2_API_PAUSED: bad });
    t.equal(error.message, `EC2_API_PAUSED must be 1 or 0, got "${bad}"`);
  }
});

t.test('LOG_LEVEL', async (t) => {
  for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) {
    t.equal(loadConfig({ LOG_LEVEL: level }).logLevel, level);
  }
  t.equal(loadConfig({ LOG_LEVEL: ' debug ' }).logLevel, 'debug', 'trimmed');
  t.equal(loadConfig({ LOG_LEVEL: '' }).logLevel, 'info');
  const error = configError({ LOG_LEVEL: 'verbose' });
  t.match(error.message, /^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"/);
});

t.test('project, playbook and tool locations', async (t) => {
  const config = loadConfig({
    EC2_API_PROJECT_DIR: '/opt/ec2-api',
    EC2_API_PLAYBOOK_DIR: 'books',
    EC2_API_ANSIBLE_PLAYBOOK: '/usr/local/bin/ansible-playbook',
    EC2_API_EMULATOR_PYTHON: '/usr/bin/python3.11',
  });
  t.equal(config.projectDir, '/opt/ec2-api');
  t.equal(config.playbookDir, '/opt/ec2-api/books', 'a relative playbook dir is under the project dir');
  t.equal(config.ansiblePlaybook, '/usr/local/bin/ansible-playbook');
  t.equal(config.emulatorPython, '/usr/bin/python3.11');
  t.equal(loadConfig({ EC2_API_PLAYBOOK_DIR: '/srv/books' }).playbookDir, '/srv/books', 'an absolute one is kept');
  const bare = loadConfig({ EC2_API_PROJECT_DIR: '/nonexistent/project' });
  t.equal(bare.ansiblePlaybook, 'ansible-playbook', 'without a .venv the tool comes from PATH');
  t.equal(bare.emulatorPython, 'python3');
});

t.test('loadConfig reads only the object it is given', async (t) => {
  const saved = process.env.PORT;
  process.env.PORT = '1234';
  t.teardown(() => {
    if (saved === undefined) delete process.env.PORT;
    else process.env.PORT = saved;
  });
  t.equal(loadConfig({}).port, 5000);
  t.equal(loadConfig().port, 1234, 'without an argument it reads process.env');
});

t.test('isLoopback', async (t) => {
  for (const host of ['127.0.0.1', '127.0.1.1', '127.255.255.254', 'localhost', '::1', '[::1]']) {
    t.equal(isLoopback(host), true, `${host} is loopback`);
  }
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.10', '1127.0.0.1', '127.0.0.1.nip.io', 'localhost.example.com', '127.0.0', '']) {
    t.equal(isLoopback(host), false, `${host} is not loopback`);
  }
});

t.test('checkExposure', async (t) => {
  const exposed = loadConfig({ HOST: '0.0.0.0' });
  let refusal: unknown;
  try {
    checkExposure(exposed);
  } catch (error) {
    refusal = error;
  }
  t.ok(refusal instanceof ConfigError, '0.0.0.0 without tokens is refused');
  const message = (refusal as Error).message;
  t.match(message, /0\.0\.0\.0/);
  t.match(message, /API_TOKENS/);
  t.match(message, /ALLOW_UNAUTHENTICATED=1/);

  t.throws(() => checkExposure(loadConfig({ HOST: '::' })), ConfigError, ':: without tokens is refused');
  t.throws(() => checkExposure(loadConfig({ HOST: '10.1.2.3', ALLOW_UNAUTHENTICATED: '0' })), ConfigError);

  t.doesNotThrow(() => checkExposure(loadConfig({ HOST: '0.0.0.0', API_TOKENS: TOKEN_A })), 'with tokens');
  t.doesNotThrow(() => checkExposure(loadConfig({ HOST: '0.0.0.0', ALLOW_UNAUTHENTICATED: '1' })), 'with ALLOW_UNAUTHENTICATED=1');
  t.doesNotThrow(() => checkExposure(loadConfig({ HOST: '127.0.0.1' })), 'loopback needs no tokens');
  t.doesNotThrow(() => checkExposure(loadConfig({})), 'the default host needs no tokens');
  t.doesNotThrow(() => checkExposure(loadConfig({ HOST: 'localhost' })));
});

t.test('cloud selection', async (t) => {
  const { resolveCloud } = await import('../src/ansible/cloud.js');
  const noAws = { PATH: process.env.PATH, HOME: '/nonexistent', AWS_EC2_METADATA_DISABLED: 'true', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_CONFIG_FILE: '/dev/null' };

  const endpoint = await resolveCloud(loadConfig({ AWS_ENDPOINT_URL: 'http://user:s3cret@127.0.0.1:9/' }), noAws);
  t.equal(endpoint.kind, 'endpoint', 'AWS_ENDPOINT_URL wins');
  t.equal(endpoint.endpointUrl, 'http://127.0.0.1:9', 'shown without its credentials');
  t.notOk(endpoint.description.includes('s3cret'));
  t.equal(endpoint.env.AWS_ENDPOINT_URL, 'http://user:s3cret@127.0.0.1:9', 'playbooks still get the URL as given');
  t.equal(endpoint.env.AWS_ACCESS_KEY_ID, 'testing', 'placeholder credentials when none are configured');

  await t.rejects(resolveCloud(loadConfig({ EC2_API_CLOUD: 'aws' }), noAws), { name: 'ConfigError', message: /no AWS credentials resolve/ });

  const aws = await resolveCloud(loadConfig({ EC2_API_CLOUD: 'auto', AWS_REGION: 'eu-west-1' }), { ...noAws, AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'x' });
  t.equal(aws.kind, 'aws', 'auto with credentials is AWS');
  t.equal(aws.endpointUrl, null);
  t.equal(aws.env.AWS_REGION, 'eu-west-1');
  t.notOk('AWS_ENDPOINT_URL' in aws.env, 'nothing redirects the playbooks');
});

t.test('numbers are whole decimal numbers only', async (t) => {
  for (const value of ['0x1F90', '1e3', '+80', '80.0', '-1']) {
    t.throws(() => loadConfig({ PORT: value }), ConfigError, `PORT=${value}`);
  }
});

t.test('one rule for the Python that runs the EC2 modules: the one that runs ansible-playbook', async (t) => {
  const { resolveCloud } = await import('../src/ansible/cloud.js');
  const project = fs.mkdtempSync(path.join(os.tmpdir(), 'ec2-api-venv-'));
  const bin = path.join(project, '.venv', 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const venvPython = path.join(bin, 'python3');
  // A stand-in for the .venv's Python: it answers the credential probe as boto3 would with an instance role.
  const script = (file: string, text: string) => fs.writeFileSync(file, text, { mode: 0o755 });
  script(venvPython, '#!/bin/sh\nexit "${PROBE_EXIT:-0}"\n');
  script(path.join(bin, 'ansible-playbook'), `#!${venvPython}\n# the .venv's ansible-playbook\n`);

  const config = loadConfig({ EC2_API_PROJECT_DIR: project, EC2_API_CLOUD: 'aws' });
  t.equal(config.ansiblePlaybook, path.join(bin, 'ansible-playbook'), 'npm start installed ansible into .venv: it is used');
  t.equal(ec2Python(config), venvPython, 'and the modules run on the .venv Python');

  const noCredentials = { PATH: '/usr/bin:/bin', HOME: '/nonexistent', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_CONFIG_FILE: '/dev/null' };
  const aws = await resolveCloud(config, noCredentials);
  t.equal(aws.kind, 'aws', 'EC2_API_CLOUD=aws asks that Python, which finds credentials (an instance role, say)');
  await t.rejects(resolveCloud(config, { ...noCredentials, PROBE_EXIT: '3' }), { name: 'ConfigError', message: /no AWS credentials resolve/ });

  script(path.join(bin, 'ansible-playbook'), '#!/usr/bin/env python3\n');
  t.equal(ec2Python(config, `${bin}:/usr/bin`), venvPython, '`#!/usr/bin/env python3` is looked up on PATH');
  t.equal(ec2Python({ ansiblePlaybook: '/usr/bin/ansible-playbook' }), '/usr/bin/python3', "Debian's ansible (which CI installs) runs on /usr/bin/python3");
  t.equal(ec2Python({ ansiblePlaybook: path.join(project, 'missing') }), null, 'no ansible-playbook, no answer');
});
