// Group commit: writes of one event-loop turn share a transaction, each
// caller hears only about its own write, and "resolved" means committed.
import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import { openDatabase } from '../src/tasks/db.js';
import { TaskEvents } from '../src/tasks/events.js';
import { GroupCommit } from '../src/tasks/group-commit.js';
import { SqliteTaskStore } from '../src/tasks/sqlite-store.js';
import { startService, tempDir, VALID } from './helpers/harness.js';

t.test('writes of one turn commit together; a failing one fails alone', async (t) => {
  const file = path.join(tempDir(), 'g.db');
  const db = openDatabase(file);
  t.teardown(() => db.close());
  const store = new SqliteTaskStore(db, new GroupCommit(db), new TaskEvents(db), () => undefined);
  const add = (id: string) => store.add({ id, action: 'delete', params: { ip: '1.2.3.4' }, ip: '1.2.3.4' });
  const results = await Promise.allSettled([add('a'), add('b'), add('a'), add('c')]);
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'], 'the duplicate id alone is refused');
  t.equal(await store.waiting(), 3, 'only committed tasks count as waiting');

  // Another connection sees exactly the three committed rows.
  const reader = new Database(file, { readonly: true });
  t.teardown(() => reader.close());
  t.same((reader.prepare('SELECT id FROM tasks ORDER BY id').all() as { id: string }[]).map((r) => r.id), ['a', 'b', 'c']);
});

t.test('the same Idempotency-Key twice at once: one task, the second replays it', async (t) => {
  const service = await startService('http://127.0.0.1:9', { EC2_API_PAUSED: '1' });
  t.teardown(() => service.close());
  const send = (password: string) =>
    service.app.inject({ method: 'POST', url: '/create-async', payload: { ...VALID, password }, headers: { 'idempotency-key': 'same-key-1' } });
  const [first, second] = await Promise.all([send('suitepad'), send('suitepad')]);
  t.equal(first.statusCode, 202);
  t.equal(second.statusCode, 202);
  t.equal(first.json().task_id, second.json().task_id);
  t.equal(second.headers['idempotent-replayed'], 'true');
  const [a, b] = await Promise.all([
    service.app.inject({ method: 'POST', url: '/create-async', payload: VALID, headers: { 'idempotency-key': 'same-key-2' } }),
    service.app.inject({ method: 'POST', url: '/create-async', payload: { ...VALID, password: 'another-one' }, headers: { 'idempotency-key': 'same-key-2' } }),
  ]);
  t.same([a.statusCode, b.statusCode].sort(), [202, 409], 'a different body under the same key is refused even in the same turn');
  const count = (service.db.prepare('SELECT count(*) AS n FROM tasks').get() as { n: number }).n;
  t.equal(count, 2, 'two keys, two tasks');
});
