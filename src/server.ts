#!/usr/bin/env node
// ec2-api-server (package.json `bin`), the entry point and the only module
// with side effects. Alone, it is the service: read config, start the app,
// listen, and stop gracefully on SIGTERM/SIGINT (within
// EC2_API_SHUTDOWN_GRACE + 5 s; a second signal exits at once).
// `ec2-api-server backup FILE` copies the database the same config names.
import path from 'node:path';
import { Command } from 'commander';
import pino, { type Logger } from 'pino';
import closeWithGrace from 'close-with-grace';
import type { Cloud } from './ansible/cloud.js';
import { buildApp, REDACT } from './app.js';
import { checkExposure, isLoopback, loadConfig, type Config } from './config.js';
import { packageVersion } from './http/openapi.js';
import { backupDatabase } from './tasks/backup.js';

/**
 * JSON lines for machines (LOG_FORMAT=json, or output not to a terminal);
 * pino-pretty, in a worker thread, for people (a terminal, or LOG_FORMAT=pretty).
 * Redaction happens before either: secrets never reach the transport.
 */
function createLogger(config: Config): { log: Logger; pretty: boolean } {
  const pretty = config.logFormat === 'pretty' || (config.logFormat === 'auto' && process.stdout.isTTY === true);
  const options = { level: config.logLevel, redact: { paths: REDACT, censor: '[redacted]' } };
  if (!pretty) return { log: pino(options), pretty };
  const transport = { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } };
  return { log: pino({ ...options, transport }), pretty };
}

/** Which EC2 is used: a box a person cannot miss on a terminal, one record for a log pipeline. */
function cloudBanner(log: Logger, pretty: boolean, cloud: Cloud): void {
  const target = `EC2 target: ${cloud.description}`;
  const hint = 'Set AWS credentials (or EC2_API_CLOUD=aws) to launch real instances.';
  const fields = { cloud: { kind: cloud.kind, endpoint: cloud.endpointUrl, region: cloud.region } };
  if (cloud.kind !== 'local-emulator') {
    if (pretty) log.info(target);
    else log.info(fields, target);
  } else if (!pretty) {
    log.warn(fields, `${target}. ${hint}`);
  } else {
    log.warn('='.repeat(78));
    log.warn(target);
    log.warn(hint);
    log.warn('='.repeat(78));
  }
}

/** Where to find the API, its docs and its metrics, and whether it needs a token. */
function listeningBanner(log: Logger, pretty: boolean, config: Config, url: string): void {
  const version = packageVersion();
  const access = config.apiTokens.length
    ? `bearer token required (${config.apiTokens.length} configured; /healthz and the console's page are open)`
    : `no API tokens: anyone who can connect may use it, by a loopback name or address${[
        ...(isLoopback(config.host) ? [] : [config.host]),
        ...config.allowedHosts,
      ]
        .map((name) => `, ${name}`)
        .join('')} (EC2_API_ALLOWED_HOSTS adds names); no web page of another site may`;
  const links = { console: `${url}/ui`, docs: `${url}/docs`, openapi: `${url}/openapi.json`, metrics: `${url}/metrics`, readiness: `${url}/readyz` };
  if (!pretty) {
    log.info({ url, version, ...links, access }, `ec2-api ${version} listening on ${url}`);
    return;
  }
  log.info(`ec2-api ${version} listening on ${url}`);
  log.info(`  console    ${links.console}`);
  log.info(`  docs       ${links.docs}  (OpenAPI: ${links.openapi})`);
  log.info(`  metrics    ${links.metrics}  (readiness: ${links.readiness})`);
  log.info(`  access     ${access}`);
}

/** Past the grace period, this long is allowed for stopping the playbooks and closing; then the process exits regardless. */
const STOP_MARGIN_SECONDS = 5;

async function serve(): Promise<void> {
  const config = loadConfig();
  checkExposure(config);
  const { log, pretty } = createLogger(config);

  const app = buildApp({ config, logger: log });
  try {
    await app.ready();
  } catch (error) {
    await app.close().catch(() => undefined); // whatever had opened (the emulator, the database) closes
    throw error;
  }
  cloudBanner(log, pretty, app.engine.cloud);
  const url = await app.listen({ port: config.port, host: config.host });
  listeningBanner(log, pretty, config, url);

  // The stop: app.close() runs the hooks (src/app.ts). A second signal, or
  // the bound passing, kills the playbooks and requeues their tasks at once.
  const exitNow = (why: string) => {
    log.warn(why);
    app.engine.tasks.abort();
  };
  closeWithGrace(
    {
      delay: (config.shutdownGrace + STOP_MARGIN_SECONDS) * 1000,
      logger: false,
      onSecondSignal: (signal) => exitNow(`second ${signal}: stopping the playbooks now and exiting`),
      onTimeout: () => exitNow('the shutdown took too long: stopping the playbooks now and exiting'),
    },
    async ({ signal, err }) => {
      if (err) log.error({ err }, 'unexpected error: shutting down');
      else log.info({ signal, grace: config.shutdownGrace }, 'shutting down: new tasks are refused, running playbooks may finish');
      await app.close();
      log.info('stopped');
    },
  );
}

/** A consistent copy of the service's database, taken while it runs (docs/service.md, Backup). */
async function backup(file: string): Promise<void> {
  const { dbPath } = loadConfig();
  const target = path.resolve(file);
  const copied = await backupDatabase(dbPath, target);
  console.log(`backed up ${dbPath} to ${target}: ${copied.tasks} tasks, schema version ${copied.schemaVersion}, ${copied.bytes} bytes`);
}

const fail = (what: string) => (error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`ec2-api-server: ${what}: ${message}`);
  process.exit(1);
};

const program = new Command('ec2-api-server')
  .description('the ec2-api service; its settings come from the environment (README, Configuration)')
  .version(packageVersion())
  .allowExcessArguments()
  .action(() => {
    if (program.args.length) program.error(`error: unknown command '${program.args[0]}': run the service with no arguments, or see --help`);
    return serve().catch(fail('cannot start'));
  });
program
  .command('backup')
  .description("copy the database (EC2_API_DB) to FILE, consistently, while the service runs; restore: docs/service.md")
  .argument('<file>', 'where the copy goes: a new file, created readable by this user only')
  .action((file: string) => backup(file).catch(fail('backup failed')));
await program.parseAsync();
