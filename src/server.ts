// The entry point, and the only module with side effects: read config,
// start the runtime, listen, and stop gracefully on SIGTERM/SIGINT.
import pino from 'pino';
import { buildApp, REDACT } from './app.js';
import { checkExposure, ConfigError, loadConfig } from './config.js';
import { startRuntime } from './runtime.js';

async function main(): Promise<void> {
  const config = loadConfig();
  checkExposure(config);
  const log = pino({ level: config.logLevel, redact: { paths: REDACT, censor: '[redacted]' } });

  const runtime = await startRuntime(config, log);
  const banner = `EC2 target: ${runtime.cloud.description}`;
  if (runtime.cloud.kind === 'local-emulator') {
    log.warn('='.repeat(78));
    log.warn(banner);
    log.warn('Set AWS credentials (or EC2_API_CLOUD=aws) to launch real instances.');
    log.warn('='.repeat(78));
  } else {
    log.info(banner);
  }

  const app = buildApp({ config, service: runtime.service, cloud: runtime.cloud, logger: log });
  await app.listen({ port: config.port, host: config.host });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, grace: config.shutdownGrace }, 'shutting down: new tasks are refused, running playbooks may finish');
    // Tasks first: new ones get 503, running playbooks get the grace period,
    // and sync requests still waiting are answered. Then the HTTP server
    // (in-flight requests finish), then the emulator and the database.
    await runtime.service.close(config.shutdownGrace);
    await app.close();
    await runtime.close();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((error: unknown) => {
  const message = error instanceof ConfigError || error instanceof Error ? error.message : String(error);
  console.error(`ec2-api: cannot start: ${message}`);
  process.exit(1);
});
