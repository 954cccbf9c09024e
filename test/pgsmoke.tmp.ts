import { startPostgres } from '/work/wt/pg/test/helpers/postgres.js';
import { openPool, migratePg } from '/work/wt/pg/src/tasks/pg-schema.js';
const p = await startPostgres();
try {
  const url = await p.database();
  const pool = openPool(url);
  await migratePg(pool); await migratePg(pool);
  console.log((await pool.query('SELECT version FROM schema_version')).rows, (await pool.query("SELECT column_name FROM information_schema.columns WHERE table_name='tasks' ORDER BY ordinal_position")).rows.map(r=>r.column_name).join(','));
  await pool.end();
} finally { await p.stop(); }
