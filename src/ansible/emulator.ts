// The bundled local EC2 emulator: moto's server as a child process this
// service owns. It listens on a free loopback port and exits on its own when
// our process dies (it watches its stdin, which closes when we go), so a
// crash never leaves an emulator behind.
import { execa, type ResultPromise } from 'execa';
import { childEnvironment } from './runner.js';

// moto's ThreadedMotoServer on port 0 picks a free port; we print it, then
// block on stdin until the parent closes it (on exit, or by dying).
const LAUNCHER = `
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"ec2-api-emulator-ready {port}", flush=True)
sys.stdin.read()
server.stop()
`;

export interface Emulator {
  url: string;
  stop(): Promise<void>;
}

export async function startEmulator(python: string, timeoutMs = 30_000): Promise<Emulator> {
  const child: ResultPromise = execa(python, ['-c', LAUNCHER], {
    env: childEnvironment(),
    extendEnv: false,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    cleanup: true,
  });

  const port = await new Promise<number>((resolve, reject) => {
    let stderr = '';
    let stdout = '';
    const timer = setTimeout(() => fail(new Error('the local EC2 emulator did not start within 30 s')), timeoutMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /ec2-api-emulator-ready (\d+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    void child.then((result) => {
      const missing = /No module named '?moto/.test(stderr)
        ? ` (moto is not installed for ${python}: run \`npm run setup\`, or pip install 'moto[server]')`
        : '';
      fail(new Error(`the local EC2 emulator exited (code ${result.exitCode ?? '?'})${missing}: ${stderr.trim().split('\n').pop() ?? ''}`));
    });
  });

  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      child.stdin?.end();
      // Short: it is one of the last steps of a shutdown that must end within its bound.
      const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
      await child;
      clearTimeout(timer);
    },
  };
}
