// One live feed of every task (GET /events) for the whole console: the task
// list, the instances page and the banner all listen to the same connection.
//
// A page lists first (GET /tasks answers with last_event_id), then listens
// from that id: events it has not seen are replayed from what the feed keeps,
// so nothing falls between the list and the feed. If the feed cannot tell
// (the list is older than what it kept), the listener hears `gap` and lists again.
import { isTaskEvent, streamEvent, type TaskEvent } from '../api/lifecycle.js';
import { noteServerTime } from './format.js';
import { follow, type Follower, type StreamState } from './sse.js';

/** A task's event, with its id in the feed. */
export type FeedEvent = TaskEvent & { id: number };

export interface FeedListener {
  event(event: FeedEvent): void;
  /** Some events since the listener's list are lost to the feed: list again. */
  gap?(): void;
}

interface Subscription {
  after: number | null;
  listener: FeedListener;
  ready: boolean;
}

/** Events kept for late listeners. */
const KEEP = 2_000;

class Feed {
  private follower: Follower | null = null;
  /** Every event after this id (and up to `last`) is in `kept`. */
  private coveredAfter: number | null = null;
  private last = 0;
  private kept: FeedEvent[] = [];
  private readonly subscriptions = new Set<Subscription>();
  private readonly stateListeners = new Set<(state: StreamState, detail?: string) => void>();
  state: StreamState = 'closed';
  stateDetail: string | undefined;

  /** Listens from event `after` (null: from now on); returns the function that stops listening. */
  subscribe(after: number | null, listener: FeedListener): () => void {
    const subscription: Subscription = { after, listener, ready: false };
    this.subscriptions.add(subscription);
    if (!this.follower) this.start(after);
    else if (this.coveredAfter !== null) this.catchUp(subscription);
    return () => {
      this.subscriptions.delete(subscription);
    };
  }

  onState(listener: (state: StreamState, detail?: string) => void): () => void {
    this.stateListeners.add(listener);
    listener(this.state, this.stateDetail);
    return () => this.stateListeners.delete(listener);
  }

  /** Connects again (after a new token) when someone listens and no page has done it already. */
  resume(): void {
    if (!this.follower && this.subscriptions.size) this.start(null);
  }

  /** Drops the connection (a refused token, say); the next subscribe starts it again. */
  stop(): void {
    this.follower?.close();
    this.follower = null;
    this.coveredAfter = null;
    this.kept = [];
    for (const subscription of this.subscriptions) subscription.ready = false;
  }

  private start(after: number | null): void {
    this.follower = follow({
      // Once the feed has said where it stands, every reconnection resumes from the last event
      // seen (or that position), even when no event came before the drop: nothing is missed.
      url: () => (this.coveredAfter !== null ? `/events?after=${this.last}` : after === null ? '/events' : `/events?after=${after}`),
      onState: (state, detail) => {
        this.state = state;
        this.stateDetail = detail;
        for (const listener of this.stateListeners) listener(state, detail);
      },
      onMessage: (message) => {
        const received = streamEvent(message);
        if (received?.type === 'ready') {
          const position = Number(received.data.after);
          if (this.coveredAfter === null) {
            this.coveredAfter = position;
            this.last = position;
            for (const subscription of this.subscriptions) this.catchUp(subscription);
          }
          return;
        }
        if (!isTaskEvent(received)) return;
        const id = Number(message.id);
        if (!Number.isFinite(id) || id <= this.last) return;
        this.last = id;
        const event = { ...received, id };
        noteServerTime(event.data.at);
        this.kept.push(event);
        if (this.kept.length > KEEP) this.coveredAfter = this.kept.splice(0, this.kept.length - KEEP).at(-1)!.id;
        for (const subscription of [...this.subscriptions]) {
          if (subscription.ready && (subscription.after === null || id > subscription.after)) subscription.listener.event(event);
        }
      },
    });
  }

  /** Brings a new listener up to the feed's position, or tells it it missed something. */
  private catchUp(subscription: Subscription): void {
    const { after } = subscription;
    subscription.ready = true;
    if (after === null || after >= this.last) return;
    if (after < this.coveredAfter!) {
      subscription.after = this.last;
      subscription.listener.gap?.();
      return;
    }
    for (const event of this.kept) if (event.id > after && this.subscriptions.has(subscription)) subscription.listener.event(event);
  }
}

export const feed = new Feed();
