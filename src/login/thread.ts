// The script each worker thread of WorkerPool (pool.ts) runs: it loads the
// task module (`workerData.module`, a URL; its default export is the task
// function), says `{ ready: true }`, and answers each `{ id, task }` with
// `{ id, ok, value }`. When the
// task function throws, only the error's name and code cross back to the main
// thread, never its message: a message could quote a password.
import { parentPort, workerData } from 'node:worker_threads';

type Run = (task: unknown) => unknown;

const port = parentPort!;
const { default: run } = (await import((workerData as { module: string }).module)) as { default: Run };

port.postMessage({ ready: true });

const safe = (value: unknown) => (typeof value === 'string' && /^[\w.-]{1,64}$/.test(value) ? value : undefined);

port.on('message', async ({ id, task }: { id: number; task: unknown }) => {
  try {
    port.postMessage({ id, ok: true, value: await run(task) });
  } catch (error) {
    const { name, code } = (error ?? {}) as { name?: unknown; code?: unknown };
    port.postMessage({ id, ok: false, name: safe(name), code: safe(code) });
  }
});
