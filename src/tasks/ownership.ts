// One service per database file: two would each think the other's running
// tasks were orphans, and kill them. The owner is recorded as pid + kernel
// start time, so a dead owner (or a recycled pid) does not block a start.
import { isSameProcessAlive, processStartTime } from '../ansible/process.js';
import type { Db } from './db.js';

export function claimDatabase(db: Db, file: string): void {
  const me = { pid: process.pid, start: processStartTime(process.pid) ?? '' };
  db.transaction(() => {
    const owner = db.prepare('SELECT pid, start_time FROM service_owner WHERE id = 1').get() as
      | { pid: number; start_time: string }
      | undefined;
    if (owner && owner.pid !== me.pid && isSameProcessAlive(owner.pid, owner.start_time)) {
      throw new Error(`another ec2-api (pid ${owner.pid}) is using ${file}; stop it or set EC2_API_DB to another file`);
    }
    db.prepare('INSERT OR REPLACE INTO service_owner (id, pid, start_time) VALUES (1, ?, ?)').run(me.pid, me.start);
  })();
}

export function releaseDatabase(db: Db): void {
  db.prepare('DELETE FROM service_owner WHERE id = 1 AND pid = ?').run(process.pid);
}
