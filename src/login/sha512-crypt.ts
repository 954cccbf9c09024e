// SHA-512-crypt (`$6$`, Drepper's "Unix crypt using SHA-256 and SHA-512"), the
// hash cloud-init and /etc/shadow take, synchronous: for the worker threads of
// hasher.ts and for tests. On the service's event loop use PasswordHasher
// (hasher.ts) instead: a hash is ~2 ms of CPU even in WebAssembly.
//
// Three implementations of the digest, one output (test/password*.test.ts):
//   wasm       the WebAssembly kernel (kernel/sha512-crypt.as; `npm run build`), the fastest;
//   oneshot    node:crypto's one-shot hash(), the fallback when the kernel is not built;
//   reference  node:crypto's createHash, step by step as the spec reads (reference.ts).
// bench/hash.mjs measures them against `openssl passwd -6`.
//
// Why our own: the npm package we tried (unixcrypt 3.0.4) hashes passwords of
// 64 or 128 bytes wrongly (the user could never log in).
import { timingSafeEqual } from 'node:crypto';
import {
  DEFAULT_ROUNDS,
  encodeDigest,
  normalizeRounds,
  normalizeSalt,
  parseSha512Crypt,
  randomSalt,
  setting,
  type Digest,
} from './format.js';
import { oneShotDigest } from './oneshot.js';
import { referenceDigest } from './reference.js';
import { wasmAvailable, wasmDigest } from './wasm.js';

export type Implementation = 'wasm' | 'oneshot' | 'reference';

const DIGESTS: Record<Implementation, Digest> = { wasm: wasmDigest, oneshot: oneShotDigest, reference: referenceDigest };

/** The implementation sha512Crypt() uses: the WebAssembly kernel when it is built, else the one-shot fallback. */
export function fastestImplementation(): Implementation {
  return wasmAvailable() ? 'wasm' : 'oneshot';
}

const utf8 = new TextEncoder();

/** The password's UTF-8 bytes in a buffer of their own (not Buffer's shared pool), so they can be wiped. */
const bytesOf = (password: string | Uint8Array) => (typeof password === 'string' ? utf8.encode(password) : password);

/**
 * SHA-512-crypt of `password` (a string, hashed as UTF-8, or raw bytes) with
 * `salt` (up to 16 characters of [./0-9A-Za-z], longer ones cut as the spec
 * says; random by default) and `rounds` (5,000 by default, clamped to
 * 1,000–999,999,999 as the spec says). Matches `openssl passwd -6` and glibc.
 */
export function sha512Crypt(password: string | Uint8Array, salt?: string, rounds?: number): string {
  return sha512CryptUsing(fastestImplementation(), password, salt, rounds);
}

/** sha512Crypt() on a given implementation (tests, bench). */
export function sha512CryptUsing(
  implementation: Implementation,
  password: string | Uint8Array,
  salt: string = randomSalt(),
  rounds: number = DEFAULT_ROUNDS,
): string {
  salt = normalizeSalt(salt);
  rounds = normalizeRounds(rounds);
  const P = bytesOf(password);
  try {
    return setting(salt, rounds) + encodeDigest(DIGESTS[implementation](P, Buffer.from(salt, 'latin1'), rounds));
  } finally {
    if (P !== password) P.fill(0);
  }
}

/**
 * Whether `password` hashes to `hash` (a `$6$` string), compared in constant
 * time. False, never an exception, for anything that is not a `$6$` hash.
 */
export function verifySha512Crypt(password: string | Uint8Array, hash: string): boolean {
  const parsed = parseSha512Crypt(hash);
  if (!parsed) return false;
  const P = bytesOf(password);
  try {
    const digest = encodeDigest(DIGESTS[fastestImplementation()](P, Buffer.from(parsed.salt, 'latin1'), parsed.rounds));
    return timingSafeEqual(Buffer.from(digest, 'latin1'), Buffer.from(parsed.digest, 'latin1'));
  } finally {
    if (P !== password) P.fill(0);
  }
}
