// The bundled local EC2 emulator: moto's server as a child process this
// service owns. It listens on a free loopback port and exits on its own when
// our process dies (it watches its stdin, which closes when we go), so a
// crash never leaves an emulator behind.
import { execa, type ResultPromise } from 'execa';
import { childEnvironment } from './runner.js';

// moto's server app on port 0 (a free port, which we print), then we block on
// stdin until the parent closes it (on exit, or by dying). Requests are
// served on threads but handled one at a time: moto's EC2 backend is not
// safe for concurrent writes, and under a burst of RunInstances from several
// runs it answered some with an HTML 500 after launching the instance (the
// SDK's retry then launched a second, since moto ignores ClientToken). A
// request takes moto milliseconds, so one at a time costs nothing here.
const LAUNCHER = `
import sys, threading
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
def one_at_a_time(environ, start_response):
    with lock:
        return list(app(environ, start_response))
server = make_server("127.0.0.1", 0, one_at_a_time, threaded=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(f"ec2-api-emulator-ready {server.server_address[1]}", flush=True)
sys.stdin.read()
server.shutdown()
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
