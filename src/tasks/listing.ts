// GET /instances reads EC2 through a playbook (~1.5 s). Listings asked for
// while one runs share it (single flight), and a result a few seconds old is
// reused: a dashboard refreshing in many tabs starts one run, not one each.
// When a task ends (it launched or terminated something), no read begun
// before is given to later callers: they get a fresh one. Ages are measured
// on the monotonic clock: a wall clock set back would keep a listing forever.
import { performance } from 'node:perf_hooks';
import type { ManagedInstance } from '../ansible/instances.js';

/** How long a listing is reused: short next to how fast instances change state. */
export const LISTING_MAX_AGE_MS = 3_000;

export class InstanceListing {
  private inFlight: Promise<ManagedInstance[]> | null = null;
  /** `at` is performance.now(), which never goes back. */
  private fresh: { at: number; instances: ManagedInstance[] } | null = null;
  /** Counts changes to EC2 the service made: a read only serves callers of the generation it began in. */
  private generation = 0;

  constructor(
    private readonly read: () => Promise<ManagedInstance[]>,
    private readonly maxAgeMs = LISTING_MAX_AGE_MS,
  ) {}

  get(): Promise<ManagedInstance[]> {
    if (this.fresh && performance.now() - this.fresh.at < this.maxAgeMs) return Promise.resolve(this.fresh.instances);
    if (this.inFlight) return this.inFlight;
    const generation = this.generation;
    const reading = this.read().then(
      (instances) => {
        if (this.inFlight === reading) this.inFlight = null;
        if (generation === this.generation) this.fresh = { at: performance.now(), instances };
        return instances;
      },
      (error: unknown) => {
        // A failure is not reused: the next caller tries again.
        if (this.inFlight === reading) this.inFlight = null;
        throw error;
      },
    );
    this.inFlight = reading;
    return reading;
  }

  /** The service changed what EC2 holds: what was read before is not handed out again. */
  changed(): void {
    this.generation++;
    this.fresh = null;
    this.inFlight = null;
  }
}
