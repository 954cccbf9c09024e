// The engine's resources, opened when the app starts and closed when it
// stops: the database (locked for this process), the EC2 in use (the
// bundled emulator is started here), the socket that paces every run's EC2
// calls (docs/pacing.md), the password workers, and the task service on top
// of them. Each adds its onClose hook as it opens; Fastify runs them
// last-added first, so the task service stops before the workers, the
// pacer, the emulator and the database it uses.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { resolveCloud, type Cloud } from '../ansible/cloud.js';
import { Pacer, type CallPacer } from '../ansible/pacer.js';
import { startPacerServer } from '../ansible/pacer-server.js';
import { openPacerPool, PgBuckets, SharedPacer } from '../ansible/pg-pacer.js';
import type { Config } from '../config.js';
import { loadSystemAccounts } from '../login/accounts.js';
import { PasswordHasher } from '../login/hasher.js';
import { openDatabase, type Db } from '../tasks/db.js';
import { migratePg, openPool, redactUrl } from '../tasks/pg-schema.js';
import { ServiceLock } from '../tasks/service-lock.js';
import { TaskService, type Storage } from '../tasks/service.js';

export interface Engine {
  /** The SQLite file; null when nodes share PostgreSQL (EC2_API_DB=postgres://…). */
  db: Db | null;
  cloud: Cloud;
  /** The EC2 call budget every playbook run shares (docs/pacing.md); with PostgreSQL, every node's runs. */
  pacer: CallPacer;
  tasks: TaskService;
}

declare module 'fastify' {
  interface FastifyInstance {
    engine: Engine;
  }
}

/** Passwords waiting for the hashing thread (~2 ms each) before new creates are refused for a moment. */
const HASH_QUEUE_LIMIT = 2_000;

async function engine(app: FastifyInstance, { config, cloud: given }: { config: Config; cloud?: Cloud }): Promise<void> {
  const systemAccounts = loadSystemAccounts(config.projectDir);
  const storage = config.dbUrl ? await openShared(app, config, config.dbUrl) : openFile(app, config);
  const db = storage.kind === 'sqlite' ? storage.db : null;

  const cloud = given ?? (await resolveCloud(config));
  if (!given) app.addHook('onClose', async () => cloud.stop());

  // Before the task service: its runs use the socket until they end.
  // Nodes sharing PostgreSQL share the EC2 budget too: one bucket per endpoint, Region, account and kind, in the database.
  const pacing = await startPacerServer(config.dbUrl ? sharedPacer(app, config, config.dbUrl) : new Pacer(config.pacing));
  app.addHook('onClose', async () => pacing.close());

  // Hashes wait for the thread at most this deep; beyond, a create gets 503 (retry) rather than waiting unboundedly.
  const hasher = new PasswordHasher({
    maxQueue: HASH_QUEUE_LIMIT,
    onError: (error) => app.log.warn({ err: error }, 'a password-hashing thread failed; it is replaced'),
  });
  app.addHook('onClose', async () => hasher.close());
  // Starts the thread now rather than on the first request, and says which kernel it runs.
  app.log.info({ implementation: await hasher.implementation() }, 'password hashing ready');

  const tasks = new TaskService(
    storage,
    hasher,
    {
      playbookDir: config.playbookDir,
      projectDir: config.projectDir,
      ansiblePlaybook: config.ansiblePlaybook,
      taskTimeout: config.taskTimeout,
      env: { ...cloud.env, ...pacing.env },
      concurrency: config.concurrency,
      batchSize: config.batchSize,
      batchDelayMs: config.batchDelayMs,
      maxQueued: config.maxQueued,
      maxAttempts: config.maxAttempts,
      idempotencyTtl: config.idempotencyTtl,
      retentionSeconds: config.retentionSeconds,
      runsDir: config.runsDir,
      paused: config.paused,
      systemAccounts,
      defaultTtl: config.defaultTtl,
      maxInstances: config.maxInstances,
    },
    app.log,
  );
  app.addHook('onClose', async () => tasks.close());
  await tasks.start();

  app.decorate('engine', { db, cloud, pacer: pacing.pacer, tasks });
}

/** The pacer of a node sharing PostgreSQL, on a small pool of its own (closed after the socket). */
function sharedPacer(app: FastifyInstance, config: Config, url: string): SharedPacer {
  const pool = openPacerPool(url);
  app.addHook('onClose', async () => pool.end());
  return new SharedPacer(config.pacing, new PgBuckets(pool), config.nodeId, app.log);
}

/** The SQLite file, locked for this process: nothing touches it (not even a migration) while another service uses it. */
function openFile(app: FastifyInstance, config: Config): Storage {
  const lock = ServiceLock.acquire(config.dbPath);
  app.addHook('onClose', async () => lock.release());
  let db: Db;
  try {
    db = openDatabase(config.dbPath, config.dbSync);
  } catch (error) {
    lock.release();
    throw error;
  }
  app.addHook('onClose', async () => {
    if (db.open) db.close();
  });
  return { kind: 'sqlite', db };
}

/**
 * The PostgreSQL database this node shares with others: not locked (several
 * nodes are the point; its run folders are), the schema brought up to date
 * by whichever node starts first. The URL is only ever logged without its password.
 */
async function openShared(app: FastifyInstance, config: Config, url: string): Promise<Storage> {
  const pool = openPool(url);
  app.addHook('onClose', async () => pool.end());
  try {
    await migratePg(pool);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw new Error(`cannot use the PostgreSQL database at ${redactUrl(url)}: ${(error as Error).message}`);
  }
  // The database is shared; the run folders are not: a node removes the ones
  // it finds at start (their playbooks died with the last process), so two
  // nodes on one machine must not share EC2_API_RUNS_DIR. The same OS lock
  // as a SQLite file's makes the second one stop with a sentence. Taken once
  // the database answered: a node that cannot start makes nothing on disk.
  const runsLock = ServiceLock.acquire(config.runsDir, 'EC2_API_RUNS_DIR');
  app.addHook('onClose', async () => runsLock.release());
  app.log.info({ database: redactUrl(url), node: config.nodeId, lease_seconds: config.leaseSeconds }, 'tasks are in PostgreSQL, shared with other nodes');
  return { kind: 'postgres', pool, nodeId: config.nodeId, leaseSeconds: config.leaseSeconds };
}

export default fp(engine, { name: 'ec2-api-engine' });
