// The task's playbook log (GET /tasks/<id>/log), followed: read from the
// start, then only what came since (?offset=), until the log says it is
// complete; shown in a <pre> that stays at its end while "Follow the end" is on.
import { api, type ApiError } from '../../api.js';

export interface LogElements {
  log: HTMLPreElement;
  state: HTMLElement;
  followEnd: HTMLInputElement;
}

export interface LogFollower {
  /** Reads what came since the last read (or all of it again). */
  read(fromStart?: boolean): void;
  /** Reads soon: after a step, the log has grown. */
  soon(): void;
  readonly complete: boolean;
  close(): void;
}

/** `active` says whether the task is known yet; until the log is complete it is read every 2 s (a task whose result came early has ended while its batch's run goes on). */
export function followLog(id: string, { log, state, followEnd }: LogElements, active: () => boolean): LogFollower {
  let offset = 0;
  let complete = false;
  let busy = false;
  let again = false;
  let closed = false;
  let timer: number | undefined;

  const read = async (fromStart = false) => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const from = fromStart ? 0 : offset;
      const { body, headers } = await api<string>(`/tasks/${id}/log${from ? `?offset=${from}` : ''}`, { text: true });
      if (closed) return;
      const length = Number(headers.get('x-log-length') ?? 0);
      if (length < from) {
        // Shorter than what was shown: the task's run started over (it was requeued). Read it again from the start.
        offset = 0;
        again = true;
        return;
      }
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      if (from === 0) log.textContent = body;
      else if (body) log.append(body);
      offset = length; // offsets count the whole output, the part left out of a long one included
      complete = headers.get('x-log-complete') === 'true';
      state.textContent = complete ? `complete, ${offset.toLocaleString('en')} characters` : `following live, ${offset.toLocaleString('en')} characters so far`;
      log.classList.toggle('empty', !log.textContent);
      if (followEnd.checked && (atEnd || !complete)) log.scrollTop = log.scrollHeight;
    } catch (error) {
      if (!closed && (error as ApiError).status !== 401) state.textContent = `could not read the log: ${(error as ApiError).message}`;
    } finally {
      busy = false;
      if (again && !closed) {
        again = false;
        void read();
      }
    }
  };

  followEnd.addEventListener('change', () => {
    if (followEnd.checked) log.scrollTop = log.scrollHeight;
  });
  const ticker = window.setInterval(() => {
    if (active() && !complete) void read();
  }, 2_000);

  return {
    read: (fromStart) => void read(fromStart),
    soon() {
      window.clearTimeout(timer);
      timer = window.setTimeout(() => void read(), 300);
    },
    get complete() {
      return complete;
    },
    close() {
      closed = true;
      window.clearInterval(ticker);
      window.clearTimeout(timer);
    },
  };
}
