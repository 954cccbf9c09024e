// The SHA-512-crypt string (`$6$[rounds=N$]salt$digest`) around a 64-byte
// digest: salt and rounds rules, the spec's base-64 encoding, parsing.
// Shared by every implementation of the digest (reference.ts, oneshot.ts,
// wasm.ts); no password passes through here.
import { randomBytes } from 'node:crypto';

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export const DEFAULT_ROUNDS = 5000;
export const MIN_ROUNDS = 1000;
export const MAX_ROUNDS = 999_999_999;
/** The spec's salt is at most 16 characters; we take them from the crypt alphabet only. */
export const MAX_SALT_LENGTH = 16;

/** The final digest of SHA-512-crypt (the spec's steps 1–21) for a password and salt (bytes). */
export type Digest = (password: Uint8Array, salt: Uint8Array, rounds: number) => Uint8Array;

export function randomSalt(): string {
  let salt = '';
  for (const byte of randomBytes(MAX_SALT_LENGTH)) salt += ITOA64[byte & 63];
  return salt;
}

/** A salt as the spec uses it: cut to 16 characters. Throws on characters outside [./0-9A-Za-z]. */
export function normalizeSalt(salt: string): string {
  if (!/^[./0-9A-Za-z]*$/.test(salt)) throw new Error('salt must be characters of [./0-9A-Za-z]');
  return salt.slice(0, MAX_SALT_LENGTH);
}

/** Rounds as the spec uses them: clamped to 1,000–999,999,999. */
export function normalizeRounds(rounds: number): number {
  if (!Number.isFinite(rounds)) throw new RangeError('rounds must be a number');
  return Math.min(MAX_ROUNDS, Math.max(MIN_ROUNDS, Math.trunc(rounds)));
}

// The spec's byte order for the final base-64 encoding.
const ORDER = [
  [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48],
  [28, 49, 7], [50, 8, 29], [9, 30, 51], [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13],
  [56, 14, 35], [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41],
] as const;

/** The 86-character encoding of a 64-byte digest. */
export function encodeDigest(digest: Uint8Array): string {
  let out = '';
  const put = (word: number, chars: number) => {
    for (let i = 0; i < chars; i++, word >>= 6) out += ITOA64[word & 63];
  };
  for (const [a, b, c] of ORDER) put((digest[a]! << 16) | (digest[b]! << 8) | digest[c]!, 4);
  put(digest[63]!, 2);
  return out;
}

/** `$6$salt$` for the default rounds, else `$6$rounds=N$salt$` (as glibc and openssl write them). */
export function setting(salt: string, rounds: number): string {
  return rounds === DEFAULT_ROUNDS ? `$6$${salt}$` : `$6$rounds=${rounds}$${salt}$`;
}

export interface ParsedHash {
  /** Everything before the digest, as written in the hash (`$6$…$`). */
  setting: string;
  salt: string;
  rounds: number;
  /** The 86-character encoded digest. */
  digest: string;
}

const HASH = /^\$6\$(?:rounds=([1-9][0-9]{0,8})\$)?([./0-9A-Za-z]{0,16})\$([./0-9A-Za-z]{86})$/;

/** The parts of a `$6$` hash string, or undefined when it is not one. */
export function parseSha512Crypt(hash: unknown): ParsedHash | undefined {
  if (typeof hash !== 'string') return undefined;
  const match = HASH.exec(hash);
  if (!match) return undefined;
  const rounds = match[1] === undefined ? DEFAULT_ROUNDS : Number(match[1]);
  // A rounds value outside the range is never written by crypt (it writes the clamped value).
  if (rounds < MIN_ROUNDS) return undefined;
  return { setting: hash.slice(0, hash.length - 86), salt: match[2]!, rounds, digest: match[3]! };
}
