// SHA-512-crypt's digest in WebAssembly: the kernel is compiled from
// kernel/sha512-crypt.as by `npm run build` to
// dist/login/kernel/sha512-crypt.wasm, and loaded here on first use (one
// instance per thread; nothing happens on import). The whole hash, all 5,000
// rounds, is one call into the module.
import fs from 'node:fs';
import type { Digest } from './format.js';

/** Where the built kernel is: next to the compiled module (dist/login/), or in dist/ when running from src/ (tests). */
export const KERNEL_CANDIDATES: readonly URL[] = [
  new URL('./kernel/sha512-crypt.wasm', import.meta.url),
  new URL('../../dist/login/kernel/sha512-crypt.wasm', import.meta.url),
];

// The project's TypeScript libs (ES2023, @types/node 20) do not declare the
// WebAssembly global: the little we use of it, typed here.
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const { WebAssembly } = globalThis as unknown as { WebAssembly: WebAssemblyApi };

interface Kernel {
  memory: { buffer: ArrayBuffer };
  input(passwordLength: number): number;
  crypt(passwordLength: number, saltLength: number, rounds: number): number;
}

let kernel: Kernel | null | undefined;

/** The kernel, instantiated on first call; null when it has not been built. */
function load(): Kernel | null {
  if (kernel !== undefined) return kernel;
  const file = KERNEL_CANDIDATES.find((url) => fs.existsSync(url));
  if (!file) return (kernel = null);
  const instance = new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(file)), {});
  return (kernel = instance.exports as unknown as Kernel);
}

/** Whether the WebAssembly kernel is built and loads. */
export function wasmAvailable(): boolean {
  return load() !== null;
}

export const wasmDigest: Digest = (P, S, rounds) => {
  const k = load();
  if (!k) throw new Error('the WebAssembly SHA-512-crypt kernel is not built: run `npm run build`');
  if (S.length > 16) throw new RangeError('the salt is at most 16 bytes');
  const at = k.input(P.length); // may grow memory: take the view after
  const memory = new Uint8Array(k.memory.buffer);
  memory.set(P, at);
  memory.set(S, at + P.length);
  const out = k.crypt(P.length, S.length, rounds); // wipes P, S and all it derived from P
  return memory.slice(out, out + 64);
};

/** For tests: the kernel's memory and where its heap (passwords and all derived from them) starts; null if not built. */
export function kernelMemory(): { bytes: Uint8Array; heap: number } | null {
  const k = load();
  return k && { bytes: new Uint8Array(k.memory.buffer), heap: k.input(0) };
}
