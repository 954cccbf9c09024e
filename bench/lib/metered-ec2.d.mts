// Types of metered-ec2.mjs, for the tests that use it (test/pacing.test.ts).
export type CallKind = 'run_instances' | 'terminate_instances' | 'mutating' | 'describe';
export declare const EC2_BUCKETS: Record<CallKind, [capacity: number, refillPerSecond: number]>;
export declare function kindOf(action: string): CallKind;
export interface ActionCount {
  /** Calls, the throttled ones included. */
  calls: number;
  throttled: number;
  first_at: number;
  last_at: number;
  throttled_at: number[];
}
export interface MeteredEc2 {
  url: string;
  stats(): Record<string, ActionCount>;
  reset(): void;
  close(): Promise<void>;
}
export declare function startMeteredEc2(
  target: string,
  options?: { buckets?: Partial<Record<CallKind, [number, number]>>; clock?: () => number },
): Promise<MeteredEc2>;
