#!/usr/bin/env node
// Compiles the SHA-512-crypt kernel (sha512-crypt.as, AssemblyScript) to
// dist/login/kernel/sha512-crypt.wasm. Part of `npm run build`; offline (the
// compiler is the `assemblyscript` dev dependency); the binary is generated,
// never committed (dist/ is ignored).
//
//   node src/login/kernel/build.mjs [--force] [output.wasm]
//
// Skips the compile (~3 s) when the output is newer than the source and this script.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..', '..');
const source = path.join(here, 'sha512-crypt.as');
const args = process.argv.slice(2);
const force = args.includes('--force');
const output = path.resolve(args.find((arg) => arg !== '--force') ?? path.join(root, 'dist', 'login', 'kernel', 'sha512-crypt.wasm'));

const mtime = (file) => (fs.existsSync(file) ? fs.statSync(file).mtimeMs : 0);
if (!force && mtime(output) > Math.max(mtime(source), mtime(fileURLToPath(import.meta.url)))) process.exit(0);

let asc;
try {
  asc = (await import('assemblyscript/asc')).default;
} catch (error) {
  console.error(`[build] cannot load the AssemblyScript compiler (dev dependency "assemblyscript"): ${error.message}`);
  process.exit(1);
}

// asc only reads `.ts` entry files; the source is `.as` so that the service's
// tsc leaves it alone. Hand it over under a `.ts` name.
const { binary, error, stderr } = await asc.compileString(
  { 'sha512-crypt.ts': fs.readFileSync(source, 'utf8') },
  { optimizeLevel: 3, shrinkLevel: 0, converge: true, noAssert: true, runtime: 'stub', initialMemory: 1 },
);
if (error || !binary) {
  console.error(`[build] ${path.relative(root, source)} does not compile:\n${stderr.toString()}`);
  process.exit(1);
}
fs.mkdirSync(path.dirname(output), { recursive: true });
const temporary = `${output}.${process.pid}.tmp`; // two builds at once (two test files) must not mix
fs.writeFileSync(temporary, binary);
fs.renameSync(temporary, output);
