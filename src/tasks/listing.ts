// GET /instances reads EC2 through a playbook (~1.5 s). Listings asked for
// while one runs share it (single flight), and a result a few seconds old is
// reused: a dashboard refreshing in many tabs starts one run, not one each.
import type { ManagedInstance } from '../ansible/instances.js';

/** How long a listing is reused: short next to how fast instances change state. */
export const LISTING_MAX_AGE_MS = 3_000;

export class InstanceListing {
  private inFlight: Promise<ManagedInstance[]> | null = null;
  private fresh: { at: number; instances: ManagedInstance[] } | null = null;

  constructor(
    private readonly read: () => Promise<ManagedInstance[]>,
    private readonly maxAgeMs = LISTING_MAX_AGE_MS,
  ) {}

  get(): Promise<ManagedInstance[]> {
    if (this.fresh && Date.now() - this.fresh.at < this.maxAgeMs) return Promise.resolve(this.fresh.instances);
    this.inFlight ??= this.read().then(
      (instances) => {
        this.fresh = { at: Date.now(), instances };
        this.inFlight = null;
        return instances;
      },
      (error: unknown) => {
        // A failure is not reused: the next caller tries again.
        this.inFlight = null;
        throw error;
      },
    );
    return this.inFlight;
  }
}
