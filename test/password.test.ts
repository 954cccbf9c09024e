import { execFileSync } from 'node:child_process';
import t from 'tap';
import { sha512Crypt, verifySha512Crypt } from '../src/login/sha512-crypt.js';

t.test('matches the test vectors of the SHA-512-crypt specification', async (t) => {
  t.equal(
    sha512Crypt('Hello world!', 'saltstring'),
    '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1',
  );
  t.equal(
    sha512Crypt('Hello world!', 'saltstringsaltst', 10000),
    '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.',
  );
  t.equal(
    sha512Crypt('we have a short salt string but not a short password', 'short', 77777),
    '$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0',
  );
});

t.test('agrees with openssl passwd -6 at every length a password may have, and with non-ASCII', async (t) => {
  for (const password of [...[8, 63, 64, 65, 127, 128].map((n) => 'p'.repeat(n)), 'pässwörd ✓ {{x}}']) {
    const expected = execFileSync('openssl', ['passwd', '-6', '-salt', 'AbCd./12', password], { encoding: 'utf8' }).trim();
    t.equal(sha512Crypt(password, 'AbCd./12'), expected, `${password.length} characters`);
  }
});

t.test('a fresh hash has a random 16-character salt and verifies', async (t) => {
  const a = sha512Crypt('suitepad');
  const b = sha512Crypt('suitepad');
  t.match(a, /^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
  t.not(a, b, 'salts differ');
  t.ok(verifySha512Crypt('suitepad', a));
  t.notOk(verifySha512Crypt('suitepaD', a));
  t.notOk(verifySha512Crypt('suitepad', 'not a hash'));
});
