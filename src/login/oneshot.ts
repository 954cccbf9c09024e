// SHA-512-crypt's digest on Node's one-shot `crypto.hash()` (Node ≥ 20.12),
// the fastest way to it in JavaScript: the eight layouts a round's input can
// have are laid out once, so a round is one 64-byte copy and one call.
// Still ~1.5 µs of call overhead a round: about 3× the WebAssembly kernel's
// CPU a hash (bench/hash.mjs). The fallback when the kernel is not built.
import { hash } from 'node:crypto';
import type { Digest } from './format.js';

const sha512 = (data: Uint8Array) => hash('sha512', data, 'buffer');

function stretch(bytes: Uint8Array, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += bytes.length) out.set(bytes.subarray(0, Math.min(bytes.length, length - i)), i);
  return out;
}

function concat(parts: Uint8Array[]): Buffer {
  const out = Buffer.alloc(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export const oneShotDigest: Digest = (P, S, rounds) => {
  const scratch: Buffer[] = [];
  const keep = <T extends Buffer>(buffer: T): T => {
    scratch.push(buffer);
    return buffer;
  };
  try {
    const B = keep(sha512(keep(concat([P, S, P]))));
    const aInput: Uint8Array[] = [P, S];
    for (let n = P.length; n > 0; n -= 64) aInput.push(B.subarray(0, Math.min(64, n)));
    for (let n = P.length; n > 0; n >>= 1) aInput.push(n & 1 ? B : P);
    let A = sha512(keep(concat(aInput)));
    const pBytes = keep(stretch(keep(sha512(keep(concat(Array<Uint8Array>(P.length).fill(P))))), P.length));
    const sBytes = keep(stretch(keep(sha512(keep(concat(Array<Uint8Array>(16 + A[0]!).fill(S))))), S.length));

    // Round i hashes (odd ? P seq : A) (i % 3 ? S seq) (i % 7 ? P seq) (odd ? A : P seq):
    // layout k = odd | (i % 3 > 0) << 1 | (i % 7 > 0) << 2, A at `offsets[k]`.
    const layouts: Buffer[] = [];
    const offsets: number[] = [];
    const A0 = new Uint8Array(64);
    for (let k = 0; k < 8; k++) {
      const odd = (k & 1) !== 0;
      const parts = [odd ? pBytes : A0];
      if (k & 2) parts.push(sBytes);
      if (k & 4) parts.push(pBytes);
      parts.push(odd ? A0 : pBytes);
      const layout = keep(concat(parts));
      layouts.push(layout);
      offsets.push(odd ? layout.length - 64 : 0);
    }
    for (let i = 0; i < rounds; i++) {
      const k = (i & 1) | (i % 3 ? 2 : 0) | (i % 7 ? 4 : 0);
      layouts[k]!.set(A, offsets[k]);
      A.fill(0);
      A = sha512(layouts[k]!);
    }
    return A;
  } finally {
    for (const buffer of scratch) buffer.fill(0);
  }
};
