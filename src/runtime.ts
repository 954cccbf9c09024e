// Wires the parts together for a running service: database, cloud, task
// service. server.ts and the tests both use it; nothing runs on import.
import fs from 'node:fs';
import { resolveCloud, type Cloud } from './ansible/cloud.js';
import { isSameProcessAlive, processStartTime } from './ansible/process.js';
import type { Config } from './config.js';
import { openDatabase, type Db } from './tasks/db.js';
import { TaskService, type Logger } from './tasks/service.js';

export interface Runtime {
  db: Db;
  cloud: Cloud;
  service: TaskService;
  /** Graceful stop: tasks, then emulator, then database. */
  close(graceSeconds?: number): Promise<void>;
}

export async function startRuntime(config: Config, log: Logger, cloudOverride?: Cloud): Promise<Runtime> {
  const db = openDatabase(config.dbPath, config.dbSync);
  // The file holds password hashes: readable by this user only.
  if (config.dbPath !== ':memory:') fs.chmodSync(config.dbPath, 0o600);
  let cloud: Cloud | undefined;
  try {
    claimDatabase(db, config.dbPath);
    cloud = cloudOverride ?? (await resolveCloud(config));
    const service = new TaskService(
      db,
      {
        playbookDir: config.playbookDir,
        projectDir: config.projectDir,
        ansiblePlaybook: config.ansiblePlaybook,
        taskTimeout: config.taskTimeout,
        env: cloud.env,
        concurrency: config.concurrency,
        batchSize: config.batchSize,
        batchDelayMs: config.batchDelayMs,
        maxQueued: config.maxQueued,
        maxAttempts: config.maxAttempts,
        idempotencyTtl: config.idempotencyTtl,
        paused: config.paused,
      },
      log,
    );
    await service.start();
    const usedCloud = cloud;
    let closed = false;
    return {
      db,
      cloud: usedCloud,
      service,
      async close(graceSeconds = config.shutdownGrace) {
        if (closed) return;
        closed = true;
        await service.close(graceSeconds);
        if (!cloudOverride) await usedCloud.stop();
        releaseDatabase(db);
        db.close();
      },
    };
  } catch (error) {
    if (cloud && !cloudOverride) await cloud.stop();
    if (db.open) db.close();
    throw error;
  }
}

/**
 * One service per database file: two would each think the other's running
 * tasks were orphans. The owner is recorded as pid + kernel start time.
 */
function claimDatabase(db: Db, file: string): void {
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

function releaseDatabase(db: Db): void {
  db.prepare('DELETE FROM service_owner WHERE id = 1 AND pid = ?').run(process.pid);
}
