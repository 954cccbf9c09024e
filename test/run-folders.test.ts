// Run folders hold a batch's vars file (every task's password hash): they
// live in the service's own directory beside the database
// (`<EC2_API_DB>.runs/`), are removed when their run ends — also when
// writing them fails — and those a killed service left are removed at the
// next start.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { PlaybookRun } from '../src/ansible/runner.js';
import { projectRoot } from '../src/config.js';
import { VALID, eventually, eventuallyAsync, liveInstancesOfTask, spawnServer, startMoto, startService, tempDir, untilTerminal } from './helpers/harness.js';

const moto = await startMoto();
t.teardown(() => moto.stop());

const runFolders = (runsDir: string) => (fs.existsSync(runsDir) ? fs.readdirSync(runsDir) : []);

t.test('after kill -9 mid-run, the next start removes the run folder the dead service left', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const runsDir = `${db}.runs`;
  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url });
  const res = await fetch(`${server.url}/create-async`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(VALID) });
  const id = ((await res.json()) as { task_id: string }).task_id;
  const [folder] = await eventually(() => {
    const found = runFolders(runsDir);
    return found.length ? found : undefined;
  }, 60_000, 'the run folder');
  t.match(folder, /^ec2-api-run-/, 'a run folder has a name that says whose it is');
  const vars = path.join(runsDir, folder!, 'vars.json');
  await eventually(() => fs.existsSync(vars), 10_000, 'the vars file');
  t.match(fs.readFileSync(vars, 'utf8'), /\$6\$/, 'it holds the batch\'s password hashes');
  t.equal(fs.statSync(runsDir).mode & 0o777, 0o700, 'in a directory only the service can read');

  const conn = new Database(db, { readonly: true });
  const pid = await eventually(() => (conn.prepare('SELECT runner_pid FROM tasks WHERE id = ?').get(id) as { runner_pid: number | null }).runner_pid, 30_000, 'the playbook to start');
  conn.close();
  server.child.kill('SIGKILL');
  process.kill(-pid, 'SIGKILL'); // its playbook dies too, as in a power cut
  await server.exited;
  t.ok(fs.existsSync(vars), 'the dead service left its run folder, hashes and all');

  const service = await startService(moto.url, { EC2_API_DB: db });
  t.teardown(() => service.close());
  t.notOk(fs.existsSync(path.join(runsDir, folder!)), 'gone once the next service has started');
  const task = await untilTerminal(service.tasks, id, 180_000);
  t.equal(task.status, 'succeeded', task.error ?? '');
  t.equal(liveInstancesOfTask(moto.url, id).length, 1, 'the task ran again, one instance');
  await eventuallyAsync(async () => (await service.tasks.output(id))?.complete, 60_000, 'the run to end');
  t.same(runFolders(runsDir), [], 'and the new run removed its own folder when it ended');
});

t.test('a run whose vars file cannot be written leaves no folder behind', async (t) => {
  const runsDir = path.join(tempDir(), 'runs');
  const run = new PlaybookRun(
    {
      playbook: path.join(projectRoot, 'playbooks', 'create.yml'),
      projectDir: projectRoot,
      ansiblePlaybook: 'ansible-playbook',
      // A value JSON cannot hold: writing the vars file throws after the folder was made.
      vars: { ec2_api_tasks: [{ task_id: 't', size: 1n }] },
      env: {},
      timeoutSeconds: 60,
    },
    runsDir,
  );
  run.start();
  await t.rejects(run.done, /BigInt/, 'the run fails');
  t.ok(fs.existsSync(runsDir), 'the runs directory was made');
  t.same(fs.readdirSync(runsDir), [], 'but the run\'s folder was removed');
});
