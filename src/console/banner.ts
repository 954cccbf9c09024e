// "Where am I": which EC2 this service drives (the local emulator, where
// nothing real is launched, or real AWS in a region), and how busy it is, from
// GET /healthz (open without a token). Refreshed when tasks change on the
// feed (at most once a second) and every 15 s, and when the feed drops.
import { api } from './api.js';
import { fill, h } from './dom.js';
import { feed } from './feed.js';
import type { StreamState } from './sse.js';
import type { Health } from '../api/documents.js';

let health: Health | null = null;
const healthListeners = new Set<(health: Health) => void>();

/** The last /healthz answer, and each new one (the launch form says where it launches). */
export function onHealth(listener: (health: Health) => void): () => void {
  healthListeners.add(listener);
  if (health) listener(health);
  return () => healthListeners.delete(listener);
}

export function startBanner(where: HTMLElement, load: HTMLElement, live: HTMLElement): void {
  let timer: number | undefined;
  let pending = false;
  let lastFetch = 0;

  const refresh = async () => {
    window.clearTimeout(timer);
    lastFetch = Date.now();
    try {
      const { body } = await api<Health>('/healthz');
      health = body;
      renderWhere(where, body);
      renderLoad(load, body);
      for (const listener of healthListeners) listener(body);
    } catch {
      renderUnreachable(load);
    }
    timer = window.setTimeout(() => void refresh(), 15_000);
  };
  /** Many task changes in a burst: one /healthz a second at most. */
  const soon = () => {
    if (pending) return;
    pending = true;
    window.setTimeout(() => {
      pending = false;
      void refresh();
    }, Math.max(0, 1_000 - (Date.now() - lastFetch)));
  };
  void refresh();
  feed.onState((state, detail) => {
    renderLive(live, state, detail);
    if (state === 'open' || state === 'reconnecting') soon();
  });
  feed.subscribe(null, { event: (event) => event.type === 'status' && soon() });
}

function renderWhere(where: HTMLElement, body: Health): void {
  const { cloud } = body;
  where.className = `where where-${cloud.kind === 'local-emulator' ? 'local' : cloud.kind === 'aws' ? 'aws' : 'endpoint'}`;
  if (cloud.kind === 'local-emulator') {
    fill(
      where,
      h('strong', null, 'Local EC2 emulator'),
      ' — nothing real is launched. ',
      h('span', { class: 'detail' }, `Instances live in moto${cloud.endpoint ? ` at ${cloud.endpoint}` : ''} and vanish when the service stops.`),
    );
  } else if (cloud.kind === 'aws') {
    fill(where, h('strong', null, `Real AWS, region ${cloud.region}`), ' — launches start real instances, billed to the account.');
  } else {
    fill(
      where,
      h('strong', null, `EC2 endpoint ${cloud.endpoint ?? ''}`),
      ` (region ${cloud.region}) — `,
      h('span', { class: 'detail' }, 'set by AWS_ENDPOINT_URL: launches go to whatever answers there.'),
    );
  }
}

function renderLoad(load: HTMLElement, body: Health): void {
  const notes: (string | HTMLElement)[] = [];
  if (body.paused) notes.push(h('span', { class: 'flag' }, 'paused: tasks are accepted but none start'));
  if (!body.accepting) notes.push(h('span', { class: 'flag' }, 'not accepting new tasks (shutting down)'));
  fill(
    load,
    h('span', null, h('strong', { 'data-testid': 'queued' }, String(body.queued)), ' queued'),
    h('span', { class: 'sep', 'aria-hidden': 'true' }, ' · '),
    h('span', null, h('strong', { 'data-testid': 'running-playbooks' }, String(body.running_playbooks)), body.running_playbooks === 1 ? ' playbook running' : ' playbooks running'),
    ...notes.map((note) => [h('span', { class: 'sep', 'aria-hidden': 'true' }, ' · '), note]),
  );
}

function renderUnreachable(load: HTMLElement): void {
  fill(load, h('span', { class: 'flag' }, 'the service does not answer'));
}

function renderLive(live: HTMLElement, state: StreamState, detail?: string): void {
  const words: Record<StreamState, string> = {
    connecting: 'connecting…',
    open: 'live',
    reconnecting: `reconnecting${detail ? ` (${detail})` : ''}…`,
    closed: 'not live',
  };
  live.className = `live live-${state}`;
  fill(live, h('span', { class: 'dot', 'aria-hidden': 'true' }), ' ', words[state]);
  live.title = state === 'open' ? 'Updates arrive as they happen (GET /events)' : 'Live updates are paused';
}
