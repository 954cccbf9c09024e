// What a stopped service left in its database, read-only: the stored creates,
// their hashes, and how the tasks were batched.
import Database from 'better-sqlite3';

/** The tasks table of a stopped service (read-only): task id → { username, password_hash }. */
export function storedCreates(dbPath) {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  const rows = db.prepare("SELECT id, params FROM tasks WHERE action = 'create'").all();
  db.close();
  const out = new Map();
  for (const row of rows) {
    let params = {};
    try {
      params = JSON.parse(row.params);
    } catch {
      // counted as a row without a hash
    }
    out.set(row.id, { username: params.username, password_hash: params.password_hash });
  }
  return out;
}

/** How many rows, and how many different hashes among them (one per request = every password was hashed). */
export function hashCounts(stored) {
  const hashes = new Set();
  for (const { password_hash } of stored.values()) if (password_hash) hashes.add(password_hash);
  return { rows: stored.size, distinct_hashes: hashes.size };
}

/** Tasks per batch (the tasks a run took together), in the order the batches started, from a stopped service's database. */
export function batchSizes(dbPath) {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return db
      .prepare('SELECT COUNT(*) AS n FROM tasks WHERE batch_id IS NOT NULL GROUP BY batch_id ORDER BY MIN(started_at)')
      .pluck()
      .all();
  } finally {
    db.close();
  }
}
