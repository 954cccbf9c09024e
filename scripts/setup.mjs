#!/usr/bin/env node
// Installs what ec2-api needs and says what it did. Run by `npm start` and
// `npm test` (so a fresh clone needs nothing else), and by hand as
// `npm run setup`. Plain Node with no dependencies: it runs before
// node_modules exists.
//
//   node scripts/setup.mjs [--for start|test] [--quiet]
//
// What it checks, in order:
//   1. npm dependencies (npm ci when node_modules is missing or stale);
//   2. the build (tsc, when dist/ is older than src/);
//   3. ansible-playbook with the amazon.aws collection and boto3
//      (apt-get when root on Debian/Ubuntu; else a clear message);
//   4. moto, the local EC2 emulator, when it is needed (tests always;
//      start only when no AWS endpoint/credentials are configured):
//      pip into ./.venv when the Python the service will use lacks it;
//   5. for tests, Debian's chromium (the console's browser tests);
//   6. for tests, systemd-analyze (the systemd unit's tests);
//   7. for tests, Debian's postgresql (the PostgreSQL store's tests).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const purpose = process.argv.includes('--for') ? process.argv[process.argv.indexOf('--for') + 1] : 'start';
const quiet = process.argv.includes('--quiet');
const venv = path.join(root, '.venv');

const say = (message) => {
  if (!quiet) console.error(`[setup] ${message}`);
};
const fail = (message) => {
  console.error(`[setup] ${message}`);
  process.exit(1);
};

function run(command, args, options = {}) {
  say(`running: ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], ...options });
  if (result.status !== 0) fail(`\`${command} ${args.join(' ')}\` failed (exit ${result.status ?? result.signal})`);
}

function succeeds(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'ignore', timeout: 60_000 });
  return result.status === 0;
}

function newestMtime(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

const isRoot = process.getuid?.() === 0;

/** The project's own virtualenv, made on first need; false when python3 cannot make one. */
function ensureVenv() {
  if (fs.existsSync(path.join(venv, 'bin', 'python3'))) return true;
  if (!succeeds('python3', ['-m', 'venv', '--help'])) {
    if (!(isRoot && hasApt)) return false;
    run('apt-get', ['install', '-y', '-qq', 'python3-venv']);
  }
  say('creating .venv/ (a project-local Python virtualenv)');
  run('python3', ['-m', 'venv', venv]);
  return true;
}

// 1. npm dependencies
const installedMarker = path.join(root, 'node_modules', '.package-lock.json');
const lockfile = path.join(root, 'package-lock.json');
if (!fs.existsSync(installedMarker) || fs.statSync(lockfile).mtimeMs > fs.statSync(installedMarker).mtimeMs + 1000) {
  say('npm dependencies are missing or out of date: installing them');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

// 2. the build
const distEntry = path.join(root, 'dist', 'server.js');
if (!fs.existsSync(distEntry) || newestMtime(path.join(root, 'src')) > fs.statSync(distEntry).mtimeMs) {
  say('building the TypeScript sources into dist/');
  run('npm', ['run', '--silent', 'build']);
}

// 3. Ansible with amazon.aws and boto3. Which ansible-playbook, and which
// Python runs the EC2 modules, is decided by the service's own config
// (dist/config.js, built above), so setup checks exactly what will run.
const { loadConfig, ec2Python, onPath } = await import(pathToFileURL(path.join(root, 'dist', 'config.js')).href);
const hasApt = onPath('apt-get') !== null;

function ansibleReady() {
  const config = loadConfig(process.env);
  const playbook = onPath(config.ansiblePlaybook);
  if (!playbook) return { ok: false, why: 'ansible-playbook is not installed' };
  const interpreter = ec2Python(config);
  if (!interpreter) return { ok: false, why: `cannot tell which Python runs ${playbook}` };
  if (!succeeds(interpreter, ['-c', 'import boto3, botocore'])) return { ok: false, why: `boto3 is missing for ${interpreter}` };
  if (!succeeds(interpreter, ['-c', 'import ansible_collections.amazon.aws'])) {
    const galaxy = path.join(path.dirname(playbook), 'ansible-galaxy');
    const listed = spawnSync(galaxy, ['collection', 'list', 'amazon.aws'], { encoding: 'utf8' });
    if (!/amazon\.aws/.test(listed.stdout ?? '')) return { ok: false, why: 'the amazon.aws collection is missing' };
  }
  return { ok: true, playbook };
}

let ansible = ansibleReady();
if (!ansible.ok) {
  if (isRoot && hasApt) {
    say(`${ansible.why}: installing Debian's ansible (ships amazon.aws) and python3-boto3 with apt-get`);
    run('apt-get', ['update', '-qq']);
    run('apt-get', ['install', '-y', '-qq', 'ansible', 'python3-boto3'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    ansible = ansibleReady();
  } else if (ensureVenv()) {
    // Not root: pip into the project's own virtualenv (the `ansible` package
    // includes the amazon.aws collection). The service finds .venv/bin/ansible-playbook.
    say(`${ansible.why}: trying pip install ansible boto3 into .venv/`);
    const pip = spawnSync(path.join(venv, 'bin', 'python3'), ['-m', 'pip', 'install', '--quiet', 'ansible', 'boto3'], { cwd: root, stdio: 'inherit' });
    if (pip.status === 0) ansible = ansibleReady();
  }
  if (!ansible.ok) {
    fail(
      `${ansible.why}. Install it, then run this again:\n` +
        '  Debian/Ubuntu: sudo apt-get install -y ansible python3-boto3\n' +
        '  elsewhere:     python3 -m pip install ansible boto3   (ansible includes amazon.aws)',
    );
  }
}
say(`ansible: ${ansible.playbook}`);

// 4. moto, the local emulator
function needsEmulator() {
  if (purpose === 'test') return true;
  if (process.env.AWS_ENDPOINT_URL) return false;
  const cloud = process.env.EC2_API_CLOUD || 'auto';
  if (cloud === 'aws') return false;
  if (cloud === 'local') return true;
  const home = os.homedir();
  const credentialFiles = [path.join(home, '.aws', 'credentials'), path.join(home, '.aws', 'config')];
  const configured =
    (process.env.AWS_ACCESS_KEY_ID && process.env.AWS_SECRET_ACCESS_KEY) ||
    process.env.AWS_PROFILE ||
    credentialFiles.some((file) => fs.existsSync(file));
  return !configured;
}

// The Python that will start the emulator is the service's own choice
// (config's emulatorPython: EC2_API_EMULATOR_PYTHON, else .venv's, else
// python3), so that is the one checked here.
const motoCheck = ['-c', 'import moto.server, flask, werkzeug'];
if (needsEmulator()) {
  const chosen = loadConfig(process.env).emulatorPython;
  if (succeeds(chosen, motoCheck)) {
    say(`local EC2 emulator: moto found for ${path.isAbsolute(chosen) ? path.relative(root, chosen) : chosen}`);
  } else if (process.env.EC2_API_EMULATOR_PYTHON?.trim()) {
    fail(`EC2_API_EMULATOR_PYTHON=${chosen} cannot import moto: run \`${chosen} -m pip install 'moto[server]'\`, or unset it`);
  } else {
    if (!ensureVenv()) fail('python3 -m venv is unavailable: run `sudo apt-get install -y python3-venv`, then this again');
    say('installing moto[server] into .venv/ (pip)');
    run(path.join(venv, 'bin', 'python3'), ['-m', 'pip', 'install', '--quiet', 'moto[server]']);
  }
}
// 5. Chromium, for the console's browser tests (tests only). Debian's package:
//    Playwright's own browser download needs the internet and is not used.
if (purpose === 'test') {
  const chromium = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  if (fs.existsSync(chromium)) {
    say(`chromium: ${chromium}`);
  } else if (isRoot && hasApt) {
    say("chromium is missing (the console's browser tests need it): installing Debian's chromium with apt-get");
    run('apt-get', ['update', '-qq']);
    run('apt-get', ['install', '-y', '-qq', 'chromium'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } else {
    say(`chromium is missing at ${chromium}: the console's browser tests will fail. Install it: sudo apt-get install -y chromium (or set CHROMIUM_PATH)`);
  }
}

// 6. systemd-analyze, for the unit's tests (tests only): it checks
//    deploy/ec2-api.service without a running systemd.
if (purpose === 'test') {
  if (onPath('systemd-analyze')) {
    say(`systemd-analyze: ${onPath('systemd-analyze')}`);
  } else if (isRoot && hasApt) {
    say("systemd-analyze is missing (the unit's tests need it): installing Debian's systemd with apt-get");
    run('apt-get', ['update', '-qq']);
    run('apt-get', ['install', '-y', '-qq', 'systemd'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } else {
    say("systemd-analyze is missing: the unit's tests will fail. Install it: sudo apt-get install -y systemd");
  }
}

// 7. PostgreSQL's server binaries, for the PostgreSQL store's tests (tests
//    only): they start a private cluster as moto is started
//    (test/helpers/postgres.ts). The package's own cluster is not used.
if (purpose === 'test') {
  const hasInitdb = () =>
    fs.existsSync('/usr/lib/postgresql') &&
    fs.readdirSync('/usr/lib/postgresql').some((version) => fs.existsSync(`/usr/lib/postgresql/${version}/bin/initdb`));
  if (hasInitdb()) {
    say('postgresql: server binaries found in /usr/lib/postgresql');
  } else if (isRoot && hasApt) {
    say("postgresql is missing (the PostgreSQL store's tests need it): installing Debian's postgresql with apt-get");
    run('apt-get', ['update', '-qq']);
    run('apt-get', ['install', '-y', '-qq', 'postgresql'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } else {
    say("postgresql is missing: the PostgreSQL store's tests will fail. Install it: sudo apt-get install -y postgresql");
  }
}

say('ready');
