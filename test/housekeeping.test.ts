// The housekeeping sweep on a real database file: ended tasks past
// EC2_API_RETENTION go with their logs, the pages they held go back to the
// file system (incremental vacuum), and EC2_API_RETENTION=0 keeps everything.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { openDatabase } from '../src/tasks/db.js';
import { TaskEvents } from '../src/tasks/events.js';
import { GroupCommit } from '../src/tasks/group-commit.js';
import { Housekeeping } from '../src/tasks/housekeeping.js';
import { SqliteTaskStore } from '../src/tasks/sqlite-store.js';
import { tempDir } from './helpers/harness.js';

const quiet = { info() {}, warn() {}, error() {} };

/** A database holding `ended` tasks that each ran alone with a 100 KiB log, and one queued task. */
async function filled(ended: number) {
  const file = path.join(tempDir(), 'tasks.db');
  const db = openDatabase(file);
  t.teardown(() => {
    if (db.open) db.close();
  });
  const store = new SqliteTaskStore(db, new GroupCommit(db), new TaskEvents(db), () => undefined);
  const params = { username: 'suitepad', password_hash: '$6$salt$hash' };
  for (let i = 0; i < ended; i++) {
    const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    await store.add({ id, action: 'create', params });
    await store.claim(`batch-${i}`, 1);
    await store.finish(id, { status: 'succeeded' });
    store.setLog(`run-${i}`, [id], { head: 'x'.repeat(64 * 1024), tail: `${i}`.repeat(36 * 1024), size: 1_000_000 });
  }
  const queued = 'ffffffff-0000-4000-8000-000000000000';
  await store.add({ id: queued, action: 'create', params });
  const size = () => {
    db.pragma('wal_checkpoint(TRUNCATE)');
    return fs.statSync(file).size;
  };
  return { db, store, queued, size };
}

t.test('a sweep deletes the ended tasks past the retention and gives their pages back', async (t) => {
  const { db, store, queued, size } = await filled(200);
  const before = size();
  t.ok(before > 20 * 1024 * 1024, `200 logs of 100 KiB make the file large (${before} bytes)`);
  const housekeeping = new Housekeeping(db, store, 1, quiet);
  await new Promise((resolve) => setTimeout(resolve, 1_100)); // past the 1 s retention
  const report = await housekeeping.sweep();
  t.equal(report.tasks, 200, 'every ended task went (in batches of 100)');
  t.ok(report.pages > 0, 'pages were given back');
  t.equal(db.pragma('freelist_count', { simple: true }), 0, 'no free page is left in the file');
  const after = size();
  t.ok(after < before / 20, `the file shrank from ${before} to ${after} bytes`);
  t.equal((db.prepare('SELECT count(*) AS n FROM runs').get() as { n: number }).n, 0, 'no log is left');
  t.equal((await store.get(queued))?.status, 'queued', 'the queued task stays');
  await housekeeping.stop();
});

t.test('EC2_API_RETENTION=0 keeps every task', async (t) => {
  const { db, store, size } = await filled(5);
  const before = size();
  const housekeeping = new Housekeeping(db, store, 0, quiet);
  const report = await housekeeping.sweep();
  t.same(report, { keys: 0, tasks: 0, pages: 0 });
  t.equal((db.prepare('SELECT count(*) AS n FROM tasks').get() as { n: number }).n, 6, 'all six tasks are there');
  t.equal(size(), before, 'the file is as it was');
  await housekeeping.stop();
});
