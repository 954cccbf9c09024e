// What the command-line client's test files share: one moto, the real
// service behind a token, and the client run as a user would run it.
import type tap from 'tap';
import { startMoto, startService, type TestService } from './harness.js';
import { ensureCliBuilt, ESCAPE, runCli, type CliResult } from './cli.js';

export const TOKEN = 'cli-test-token-0123456789abcdef';
export const PASSWORD = 'Cli-Secret-Passw0rd-77'; // distinctive: found wherever it leaks
export const IP_LINE = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\n$/;

export const json = <T = Record<string, unknown>>(result: CliResult): T => JSON.parse(result.stdout) as T;
export const taskIdIn = (text: string) => /task ([0-9a-f-]{36})/.exec(text)?.[1];

/** Nothing a person or script should not see: no escape codes when piped, never the password. */
export function clean(t: Pick<typeof tap, 'notMatch' | 'notOk'>, result: CliResult, what: string) {
  t.notMatch(result.stdout, ESCAPE, `${what}: no escape codes on stdout when piped`);
  t.notMatch(result.stderr, ESCAPE, `${what}: no escape codes on stderr when piped`);
  t.notOk(result.stdout.includes(PASSWORD) || result.stderr.includes(PASSWORD), `${what}: the password is not printed`);
}

/** A moto and the real service on it, torn down with `t`; `cli` runs the client against that service. */
export async function cliSuite(t: Pick<typeof tap, 'teardown'>) {
  ensureCliBuilt();
  const moto = await startMoto();
  const services: TestService[] = [];
  t.teardown(async () => {
    for (const service of services) await service.close();
    await moto.stop();
  });

  /** The real service, listening on a port of its own; its URL. */
  async function serve(endpoint: string, env: Record<string, string> = {}): Promise<{ service: TestService; url: string }> {
    const service = await startService(endpoint, { API_TOKENS: TOKEN, ...env });
    services.push(service);
    await service.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = service.app.server.address() as { port: number };
    return { service, url: `http://127.0.0.1:${port}` };
  }

  const main = await serve(moto.url);
  const env = { EC2_API_URL: main.url, EC2_API_TOKEN: TOKEN };
  const cli = (args: string[], input?: string, extra: Record<string, string | undefined> = {}) => runCli(args, { env: { ...env, ...extra }, input });
  return { moto, main, env, cli, serve, services };
}
