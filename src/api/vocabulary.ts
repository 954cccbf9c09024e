/**
 * Generated from the service's /openapi.json by scripts/openapi-types.mjs;
 * regenerate with `npm run openapi:types`. Do not make direct changes to the file.
 */

// The words and rules of the API that its clients (src/cli and src/console)
// offer and check before asking, taken from the schemas of the document.
import type { Exhaustive, InstanceState, TaskAction, TaskStatus } from './documents.js';

/** A task's `status`. */
export const STATUSES = ["queued", "running", "succeeded", "failed", "canceled"] as const satisfies readonly TaskStatus[];
/** A task's `action`. */
export const ACTIONS = ["create", "delete"] as const satisfies readonly TaskAction[];
/** A task's `instance_state` when it is known. */
export const INSTANCE_STATES = ["pending", "running", "terminated", "not_found"] as const satisfies readonly InstanceState[];

/** The new login's name (`username` of POST /create and POST /instances). */
export const USERNAME = {
  "pattern": "^[a-z_][a-z0-9_-]{0,31}$",
  "maxLength": 32,
  "description": "1–32 characters: lowercase letters, digits, \"_\" or \"-\", starting with a letter or \"_\""
} as const;

/** The new login's password. The pattern uses \P{…}: match it with the `u` flag. */
export const PASSWORD = {
  "pattern": "^\\P{C}+$",
  "minLength": 8,
  "maxLength": 128,
  "description": "8–128 printable characters (no control characters); never stored or echoed, only its SHA-512-crypt hash"
} as const;

// The lists above name every member of the API's types (a build fails otherwise).
const complete: [
  Exhaustive<(typeof STATUSES)[number], TaskStatus>,
  Exhaustive<(typeof ACTIONS)[number], TaskAction>,
  Exhaustive<(typeof INSTANCE_STATES)[number], InstanceState>,
] = [true, true, true];
void complete;
