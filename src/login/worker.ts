// The task function of PasswordHasher's worker threads (thread.ts runs it in
// each thread of pool.ts): SHA-512-crypt off the event loop. The password
// arrives as UTF-8 bytes (a copy of the main thread's, which wipes its own),
// and is wiped here once hashed: no copy of it is left in this thread.
import { fastestImplementation, sha512Crypt, verifySha512Crypt } from './sha512-crypt.js';

export type HashTask =
  | { op: 'hash'; password: Uint8Array }
  | { op: 'verify'; password: Uint8Array; hash: string }
  | { op: 'implementation' };

export default function run(task: HashTask): string | boolean {
  switch (task.op) {
    case 'hash':
      try {
        return sha512Crypt(task.password);
      } finally {
        task.password.fill(0);
      }
    case 'verify':
      try {
        return verifySha512Crypt(task.password, task.hash);
      } finally {
        task.password.fill(0);
      }
    case 'implementation':
      return fastestImplementation();
    default:
      throw new Error('unknown password hashing task');
  }
}

// Warm up when the thread starts: load the kernel and let V8 optimize it, so
// that the first request does not pay for it.
sha512Crypt('warm-up', 'warmupwarmupwarm');
