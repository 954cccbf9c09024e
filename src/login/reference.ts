// The readable reference of SHA-512-crypt's digest (Drepper, "Unix crypt
// using SHA-256 and SHA-512", steps 1–21), step by step on node:crypto's
// createHash. Too slow for the service (about 6× the CPU of the WebAssembly
// kernel it runs: kernel/sha512-crypt.as, wasm.ts; bench/hash.mjs). Tests check
// that all implementations agree with this one, openssl and the spec.
import { createHash } from 'node:crypto';
import type { Digest } from './format.js';

const sha512 = (...parts: Uint8Array[]) => {
  const hash = createHash('sha512');
  for (const part of parts) hash.update(part);
  return hash.digest();
};

/** `bytes` repeated, then cut, to exactly `length` bytes. */
function stretch(bytes: Uint8Array, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += bytes.length) out.set(bytes.subarray(0, Math.min(bytes.length, length - i)), i);
  return out;
}

export const referenceDigest: Digest = (P, S, rounds) => {
  // Steps 4–8: digest B of P, S, P.
  const B = sha512(P, S, P);
  // Steps 1–3 and 9–12: digest A of P, S, B stretched to |P|, then, for each
  // bit of |P| from the lowest, B for a 1 and P for a 0.
  const a = createHash('sha512').update(P).update(S).update(stretch(B, P.length));
  for (let n = P.length; n > 0; n >>= 1) a.update(n & 1 ? B : P);
  let A = a.digest();
  // Steps 13–16: the P sequence, from P repeated |P| times.
  const pBytes = stretch(sha512(...Array<Uint8Array>(P.length).fill(P)), P.length);
  // Steps 17–20: the S sequence, from S repeated 16 + A[0] times.
  const sBytes = stretch(sha512(...Array<Uint8Array>(16 + A[0]!).fill(S)), S.length);
  // Step 21: the rounds.
  for (let i = 0; i < rounds; i++) {
    const c = createHash('sha512');
    c.update(i & 1 ? pBytes : A);
    if (i % 3) c.update(sBytes);
    if (i % 7) c.update(pBytes);
    c.update(i & 1 ? A : pBytes);
    A = c.digest();
  }
  return A;
};
