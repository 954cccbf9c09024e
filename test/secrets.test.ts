// The plaintext password and the API token appear nowhere: not in any
// process's command line or environment during a real run, not in the
// database files (WAL included), not in the task log, not in the service's
// logs, not in any response.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import Database from 'better-sqlite3';
import { spawnServer, startMoto, storedParams, tempDir } from './helpers/harness.js';
import { isGroupLeader, sampleProcesses } from './helpers/processes.js';

const moto = await startMoto();
t.teardown(() => moto.stop());

const PASSWORD = 'Zebra-Secret-9931!';
const TOKEN = 'tok-' + 'f00dfeed'.repeat(5);

t.test('a real create leaks neither the password nor the token', async (t) => {
  const db = path.join(tempDir(), 'ec2-api.db');
  const server = await spawnServer({ EC2_API_DB: db, AWS_ENDPOINT_URL: moto.url, API_TOKENS: TOKEN, LOG_LEVEL: 'trace' });
  t.teardown(() => {
    server.child.kill('SIGKILL');
  });

  // Sample every process while the playbook runs.
  let sampling = true;
  let samples = 0;
  let playbooksSeen = 0;
  const leaks: string[] = [];
  // What the service's children showed, kept to look for the password's hash once it is known.
  const seen = new Set<string>();
  const sampler = (async () => {
    while (sampling) {
      for (const p of sampleProcesses()) {
        if (p.cmdline.includes('ansible-playbook') && isGroupLeader(p.pid)) playbooksSeen++;
        if (!p.cmdline.includes('dist/server.js')) seen.add(`${p.pid} ${p.cmdline}\n${p.environ}`);
        for (const [what, text] of [['cmdline', p.cmdline], ['environ', p.environ]] as const) {
          if (text.includes(PASSWORD)) leaks.push(`password in ${what} of ${p.pid} (${p.cmdline.slice(0, 60)})`);
          // The service itself was given the token in its environment by its operator.
          if (!p.cmdline.includes('dist/server.js') && text.includes(TOKEN)) leaks.push(`token in ${what} of ${p.pid} (${p.cmdline.slice(0, 60)})`);
        }
      }
      samples++;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();

  const res = await fetch(`${server.url}/create`, {
    method: 'POST',
    // With a key, the hash stays after the create ends (a replay is checked against it): so it can be looked for below.
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}`, 'idempotency-key': 'secrets-test' },
    body: JSON.stringify({ username: 'dora', password: PASSWORD }),
  });
  const text = await res.text();
  sampling = false;
  await sampler;

  t.equal(res.status, 200, text);
  t.ok(samples > 20, `sampled the process table ${samples} times`);
  t.ok(playbooksSeen > 0, 'an ansible-playbook run was among the samples');
  t.same(leaks, [], 'no process exposed a secret');
  const hash = storedParams(new Database(db, { readonly: true }), JSON.parse(text).task_id).password_hash!;
  t.match(hash, /^\$6\$/, 'the stored hash, to look for');
  t.same(
    [...seen].filter((sample) => sample.includes(hash)).map((sample) => sample.slice(0, 80)),
    [],
    'nor the password hash: no child had it on its command line or in its environment',
  );
  t.notOk(text.includes(PASSWORD), 'not in the response');

  // A second request with a wrong body shape must not echo the password either.
  const bad = await fetch(`${server.url}/create`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: `{"username": "dora", "password": "${PASSWORD}", "extra": `,
  });
  t.equal(bad.status, 400);
  t.notOk((await bad.text()).includes(PASSWORD), 'not in an error response');

  server.child.kill('SIGTERM');
  t.equal(await server.exited, 0);

  for (const file of [db, `${db}-wal`, `${db}-shm`].filter((f) => fs.existsSync(f))) {
    t.equal(fs.readFileSync(file).indexOf(PASSWORD), -1, `not in ${path.basename(file)}`);
  }
  t.notOk(server.output().includes(PASSWORD), 'not in the service log (trace level)');
  t.notOk(server.output().includes(TOKEN), 'the token is not logged');
  t.match(server.output(), /"url":"\/create"/, 'the log did record the requests');
});
