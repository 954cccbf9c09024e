// SHA-512-crypt (`$6$`, Drepper's "Unix crypt using SHA-256 and SHA-512"),
// the hash cloud-init and /etc/shadow take. Our own, on Node's native
// SHA-512, because the npm package we tried (unixcrypt 3.0.4) hashes
// passwords of 64 or 128 bytes wrongly (the user could never log in); this
// one matches `openssl passwd -6` and the spec's test vectors (test/password.test.ts).
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const DEFAULT_ROUNDS = 5000;

const sha512 = (...parts: Buffer[]) => {
  const hash = createHash('sha512');
  for (const part of parts) hash.update(part);
  return hash.digest();
};

/** `bytes` repeated to exactly `length` bytes. */
function stretch(bytes: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += bytes.length) bytes.copy(out, i, 0, Math.min(bytes.length, length - i));
  return out;
}

function randomSalt(): string {
  return [...randomBytes(16)].map((byte) => ITOA64[byte & 63]).join('');
}

// The spec's byte order for the final base-64 encoding.
const ORDER = [
  [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48],
  [28, 49, 7], [50, 8, 29], [9, 30, 51], [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13],
  [56, 14, 35], [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41],
] as const;

function encode(digest: Buffer): string {
  let out = '';
  const put = (word: number, chars: number) => {
    for (let i = 0; i < chars; i++, word >>= 6) out += ITOA64[word & 63];
  };
  for (const [a, b, c] of ORDER) put((digest[a]! << 16) | (digest[b]! << 8) | digest[c]!, 4);
  put(digest[63]!, 2);
  return out;
}

export const MIN_ROUNDS = 1000;
export const MAX_ROUNDS = 999_999_999;

export function sha512Crypt(password: string, salt: string = randomSalt(), rounds = DEFAULT_ROUNDS): string {
  if (!/^[./0-9A-Za-z]{0,16}$/.test(salt)) throw new Error('salt must be up to 16 characters of [./0-9A-Za-z]');
  rounds = Math.min(MAX_ROUNDS, Math.max(MIN_ROUNDS, Math.trunc(rounds)));
  const P = Buffer.from(password, 'utf8');
  const S = Buffer.from(salt, 'ascii');

  const B = sha512(P, S, P);
  const a = createHash('sha512').update(P).update(S).update(stretch(B, P.length));
  for (let n = P.length; n > 0; n >>= 1) a.update(n & 1 ? B : P);
  let A = a.digest();

  const pBytes = stretch(sha512(...Array<Buffer>(P.length).fill(P)), P.length);
  const sBytes = stretch(sha512(...Array<Buffer>(16 + A[0]!).fill(S)), S.length);

  for (let i = 0; i < rounds; i++) {
    const c = createHash('sha512');
    c.update(i & 1 ? pBytes : A);
    if (i % 3) c.update(sBytes);
    if (i % 7) c.update(pBytes);
    c.update(i & 1 ? A : pBytes);
    A = c.digest();
  }
  const prefix = rounds === DEFAULT_ROUNDS ? '$6$' : `$6$rounds=${rounds}$`;
  return `${prefix}${salt}$${encode(A)}`;
}

/** Whether `password` hashes to `hash` (a `$6$` string), compared in constant time. */
export function verifySha512Crypt(password: string, hash: string): boolean {
  const match = /^\$6\$(?:rounds=(\d+)\$)?([./0-9A-Za-z]{0,16})\$[./0-9A-Za-z]{86}$/.exec(hash);
  if (!match) return false;
  const again = Buffer.from(sha512Crypt(password, match[2], match[1] ? Number(match[1]) : DEFAULT_ROUNDS));
  const stored = Buffer.from(hash);
  return again.length === stored.length && timingSafeEqual(again, stored);
}
