// SHA-512-crypt, synchronous (src/login/sha512-crypt.ts): the spec's test
// vectors, agreement with `openssl passwd -6`, and agreement of the three
// implementations (WebAssembly kernel, one-shot crypto.hash, createHash reference).
import { execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  fastestImplementation,
  sha512Crypt,
  sha512CryptUsing,
  verifySha512Crypt,
  type Implementation,
} from '../src/login/sha512-crypt.js';
import { KERNEL_CANDIDATES, kernelMemory } from '../src/login/wasm.js';

// The WebAssembly kernel is built by `npm run build` (npm test runs it when
// src/ is newer than dist/). Run directly with tap on a fresh clone, build it here.
if (!KERNEL_CANDIDATES.some((url) => fs.existsSync(url))) {
  execFileSync(process.execPath, [fileURLToPath(new URL('../src/login/kernel/build.mjs', import.meta.url))], { stdio: 'inherit' });
}

const IMPLEMENTATIONS: Implementation[] = ['wasm', 'oneshot', 'reference'];

/** `openssl passwd -6` of each password with one salt, in one openssl process. */
function openssl(salt: string, passwords: string[]): string[] {
  const out = execFileSync('openssl', ['passwd', '-6', '-salt', salt, '-stdin'], { input: passwords.join('\n') + '\n', encoding: 'utf8' });
  return out.trim().split('\n');
}

// Drepper, "Unix crypt using SHA-256 and SHA-512", the SHA-512 test vectors
// (setting, password, expected). Checked against glibc/libxcrypt's crypt(3).
const VECTORS: [string, number | undefined, string, string][] = [
  ['saltstring', undefined, 'Hello world!', '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1'],
  [
    'saltstringsaltstring',
    10000,
    'Hello world!',
    '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.',
  ],
  [
    'toolongsaltstring',
    5000,
    'This is just a test',
    '$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0',
  ],
  [
    'anotherlongsaltstring',
    1400,
    'a very much longer text to encrypt.  This one even stretches over morethan one line.',
    '$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1',
  ],
  [
    'short',
    77777,
    'we have a short salt string but not a short password',
    '$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0',
  ],
  [
    'asaltof16chars..',
    123456,
    'a short string',
    '$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1',
  ],
  [
    'roundstoolow',
    10,
    'the minimum number is still observed',
    '$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.',
  ],
];

t.test('the WebAssembly kernel is built and is what sha512Crypt uses', async (t) => {
  t.equal(fastestImplementation(), 'wasm');
});

t.test("matches the specification's test vectors, in every implementation", async (t) => {
  for (const implementation of IMPLEMENTATIONS) {
    for (const [salt, rounds, password, expected] of VECTORS) {
      // The spec writes `rounds=5000` when the setting says it; we (like openssl) leave the default out.
      const written = expected.replace('$rounds=5000$', '$');
      t.equal(sha512CryptUsing(implementation, password, salt, rounds), written, `${implementation}: ${password}`);
    }
  }
  for (const [, , password, expected] of VECTORS) {
    t.ok(verifySha512Crypt(password, expected), `verifies ${expected.slice(0, 24)}…`);
  }
});

t.test('agrees with openssl passwd -6 around the block sizes (64- and 128-byte passwords)', async (t) => {
  const lengths = [1, 7, 8, 15, 16, 31, 32, 47, 48, 63, 64, 65, 111, 112, 127, 128, 129, 200, 256];
  const passwords = lengths.map((n) => Array.from({ length: n }, (_, i) => 'abcdefghijklmnopqrstuvwxyz0123456789'[i % 36]).join(''));
  for (const salt of ['AbCd./12', 'saltsaltsaltsalt', 'x']) {
    const expected = openssl(salt, passwords);
    for (const implementation of IMPLEMENTATIONS) {
      passwords.forEach((password, i) => t.equal(sha512CryptUsing(implementation, password, salt), expected[i], `${implementation}, ${password.length} bytes, salt ${salt}`));
    }
  }
});

const ALPHABET = [
  ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~',
  'ä', 'ö', 'ß', 'é', 'ñ', '✓', '€', '→', '日', '本', '語', 'Ω', 'ж', '😀', '🔑', '{{', '}}',
];
const randomPassword = (max = 128) => Array.from({ length: randomInt(1, max + 1) }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
const SALT_CHARS = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const randomSaltOf = (length: number) => Array.from({ length }, () => SALT_CHARS[randomInt(64)]).join('');

t.test('agrees with openssl passwd -6 for random passwords, UTF-8 included, and random salts', async (t) => {
  for (let run = 0; run < 4; run++) {
    const salt = randomSaltOf(randomInt(1, 17));
    // openssl cuts passwords at 256 bytes; ours are at most 128 characters (the API's limit), ≤ 512 bytes.
    const passwords = Array.from({ length: 25 }, () => randomPassword()).filter((p) => Buffer.byteLength(p) <= 256);
    const expected = openssl(salt, passwords);
    passwords.forEach((password, i) => {
      t.equal(sha512Crypt(password, salt), expected[i], `${Buffer.byteLength(password)} bytes, salt ${salt}`);
    });
  }
});

t.test('the fast implementations agree with the reference on any bytes, salt and rounds', async (t) => {
  for (let run = 0; run < 40; run++) {
    const password = run % 2 ? randomBytes(randomInt(0, 600)) : Buffer.from(randomPassword(128));
    const salt = randomSaltOf(randomInt(0, 17));
    const rounds = 1000 + randomInt(0, 300);
    const reference = sha512CryptUsing('reference', password, salt, rounds);
    t.equal(sha512CryptUsing('wasm', password, salt, rounds), reference, `wasm, ${password.length} bytes, salt ${salt.length}, ${rounds} rounds`);
    t.equal(sha512CryptUsing('oneshot', password, salt, rounds), reference, `oneshot, ${password.length} bytes`);
  }
  // A long password after a short one and back: the kernel's memory grows and is reused.
  const long = 'λ'.repeat(2000);
  t.equal(sha512CryptUsing('wasm', long, 'grow'), sha512CryptUsing('reference', long, 'grow'));
  t.equal(sha512CryptUsing('wasm', 'short', 'grow'), sha512CryptUsing('reference', 'short', 'grow'));
});

t.test('a fresh hash has a random 16-character salt and verifies; a wrong password does not', async (t) => {
  const a = sha512Crypt('suitepad');
  const b = sha512Crypt('suitepad');
  t.match(a, /^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
  t.not(a, b, 'salts differ');
  t.ok(verifySha512Crypt('suitepad', a));
  t.notOk(verifySha512Crypt('suitepaD', a));
  t.notOk(verifySha512Crypt('suitepad ', a));
  t.notOk(verifySha512Crypt('', a));
  const utf8 = sha512Crypt('pässwörd ✓');
  t.ok(verifySha512Crypt('pässwörd ✓', utf8));
  t.notOk(verifySha512Crypt('passwörd ✓', utf8));
});

t.test('a bad hash string is rejected, not thrown', async (t) => {
  const good = sha512Crypt('suitepad', 'saltsalt');
  const bad: unknown[] = [
    '',
    'not a hash',
    '$6$',
    '$6$saltsalt$',
    good.slice(0, -1),
    good + 'x',
    good.replace('$6$', '$5$'),
    good.replace('$6$', '$1$'),
    good.replace('$6$', '$6$rounds=10$'), // crypt never writes rounds below 1,000
    good.replace('$6$', '$6$rounds=0$'),
    good.replace('$6$', '$6$rounds=05000$'),
    good.replace('$6$', '$6$rounds=1000000000$'),
    good.replace('$6$', '$6$rounds=abc$'),
    good.replace('saltsalt', 'salt:salt'),
    good.replace('saltsalt', 'saltsaltsaltsaltsalt'),
    good.replace(/.$/, '!'),
    ` ${good}`,
    `${good}\n`,
    undefined,
    null,
    42,
    {},
  ];
  for (const hash of bad) {
    t.equal(verifySha512Crypt('suitepad', hash as string), false, JSON.stringify(hash) ?? String(hash));
  }
  t.ok(verifySha512Crypt('suitepad', good), 'the good one still verifies');
});

t.test('a bad salt or rounds throws without the password in the message', async (t) => {
  t.throws(() => sha512Crypt('secret-password', 'bad$salt'), /salt must be/);
  t.throws(() => sha512Crypt('secret-password', 'salt', Number.NaN), /rounds must be a number/);
  try {
    sha512Crypt('secret-password', 'bad salt');
  } catch (error) {
    t.notMatch(String((error as Error).stack), /secret-password/);
  }
});

t.test('the kernel leaves nothing of the password in its memory', async (t) => {
  const password = 'Wipe-Me-Please-0123456789';
  sha512CryptUsing('wasm', password, 'saltsaltsaltsalt');
  const { bytes, heap } = kernelMemory()!;
  const memory = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  t.equal(memory.indexOf(Buffer.from(password.slice(0, 8))), -1, 'not even 8 bytes of it');
  t.ok(memory.subarray(heap).every((byte) => byte === 0), 'the heap (P, S, the P and S sequences, the round layouts) is zero');
});
