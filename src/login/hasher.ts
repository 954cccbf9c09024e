// Turns request passwords into SHA-512-crypt hashes, and checks a password
// against a stored hash (an Idempotency-Key replay).
// PLACEHOLDER until the worker-pool implementation lands: runs on the caller's thread.
import { sha512Crypt, verifySha512Crypt } from './sha512-crypt.js';

export class PasswordHasher {
  async hash(_username: string, password: string): Promise<string> {
    return sha512Crypt(password);
  }

  async verify(password: string, hash: string): Promise<boolean> {
    return verifySha512Crypt(password, hash);
  }

  async close(): Promise<void> {}
}
