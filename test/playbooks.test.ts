// The playbooks as ops run them by hand, and as the service runs them:
// idempotent per task id, deletes only what they manage, and values from
// the API are never evaluated as templates.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import t from 'tap';
import { PlaybookRun } from '../src/ansible/runner.js';
import { sha512Crypt } from '../src/login/sha512-crypt.js';
import { projectRoot } from '../src/config.js';
import { instances, launchUntagged, liveInstancesOfTask, startMoto, tempDir } from './helpers/harness.js';

const moto = await startMoto();
t.teardown(() => moto.stop());

const hash = sha512Crypt('by-hand-password');

/** `ansible-playbook -i inventory playbooks/<name> …` exactly as the README tells ops to run it. */
async function byHand(playbook: string, ...extra: string[]) {
  const result = await execa('ansible-playbook', ['-i', 'inventory', `playbooks/${playbook}`, ...extra], {
    cwd: projectRoot,
    env: { AWS_ENDPOINT_URL: moto.url },
    reject: false,
  });
  const recap = /localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/.exec(result.stdout);
  return { exitCode: result.exitCode, stdout: result.stdout, changed: Number(recap?.[2] ?? -1) };
}

t.test('create.yml by hand: a second run with the same task id changes nothing', async (t) => {
  const first = await byHand('create.yml', '-e', 'task_id=manual-1', '-e', 'username=alice', '-e', `password_hash=${hash}`);
  t.equal(first.exitCode, 0, first.stdout);
  t.ok(first.changed > 0, 'the first run launched');
  const second = await byHand('create.yml', '-e', 'task_id=manual-1', '-e', 'username=alice', '-e', `password_hash=${hash}`);
  t.equal(second.exitCode, 0, second.stdout);
  t.equal(second.changed, 0, 'the second run changed nothing');
  const live = liveInstancesOfTask(moto.url, 'manual-1');
  t.equal(live.length, 1, 'one instance');
  t.match(live[0]!.tags, { ManagedBy: 'ec2-api', TaskId: 'manual-1' });
  t.notOk(first.stdout.includes(hash) || second.stdout.includes(hash), 'no_log keeps the hash out of the output');

  const ip = live[0]!.ip!;
  const del = await byHand('delete.yml', '-e', `ip=${ip}`);
  t.equal(del.exitCode, 0, del.stdout);
  t.ok(del.changed > 0);
  t.equal(instances(moto.url).find((i) => i.id === live[0]!.id)?.state, 'terminated');
  const again = await byHand('delete.yml', '-e', `ip=${ip}`);
  t.equal(again.changed, 0, 'deleting again changes nothing');
  t.match(again.stdout, /not_found/);
});

t.test('delete.yml leaves an instance without the ec2-api tag alone', async (t) => {
  const foreign = launchUntagged(moto.url);
  const del = await byHand('delete.yml', '-e', `ip=${foreign.ip}`);
  t.equal(del.exitCode, 0);
  t.equal(del.changed, 0);
  t.equal(instances(moto.url).find((i) => i.id === foreign.id)?.state, 'running');
});

t.test('the runner marks values unsafe: a template in any value is never evaluated', async (t) => {
  const marker = path.join(tempDir(), 'pwned');
  const injection = `{{ lookup('pipe', 'touch ${marker}') }}`;
  const run = new PlaybookRun({
    playbook: path.join(projectRoot, 'playbooks', 'create.yml'),
    projectDir: projectRoot,
    ansiblePlaybook: 'ansible-playbook',
    env: { AWS_ENDPOINT_URL: moto.url },
    timeoutSeconds: 120,
    vars: {
      ec2_api_tasks: [
        { task_id: 'inject-user', username: injection, password_hash: hash },
        { task_id: 'inject-hash', username: 'carol', password_hash: injection },
        { task_id: 'fine', username: 'carol', password_hash: hash },
      ],
    },
  });
  const result = await run.done;
  t.equal(result.end, 'completed');
  t.notOk(fs.existsSync(marker), 'the lookup never ran');
  t.match(result.results['inject-user'], { ok: false, error: /username/ });
  t.match(result.results['inject-hash'], { ok: false, error: /password_hash/ });
  t.match(result.results.fine, { ok: true, public_ip: String }, 'the valid task in the same batch still launched');
  t.equal(liveInstancesOfTask(moto.url, 'fine').length, 1);
  t.equal(liveInstancesOfTask(moto.url, 'inject-user').length, 0);
});
