// The console's entry point: the header (where am I, how busy, live or not),
// a small router over /ui/… paths (links followed without a page load; Back
// and Forward work), and the token prompt when the service wants one.
import { api, ApiError, onAuthRequired, token } from './api.js';
import { startBanner } from './banner.js';
import { fill, h } from './dom.js';
import { feed } from './feed.js';
import type { Page, PageContext } from './page.js';
import { instancesPage } from './pages/instances.js';
import { launchPage } from './pages/launch.js';
import { taskPage } from './pages/task.js';
import { tasksPage } from './pages/tasks.js';

const main = document.getElementById('main') as HTMLElement;
const session = document.getElementById('session') as HTMLElement;

interface Route {
  pattern: RegExp;
  page: Page;
  nav: string;
}

const ROUTES: Route[] = [
  { pattern: /^\/ui\/?$/, page: tasksPage, nav: 'tasks' },
  { pattern: /^\/ui\/tasks\/?$/, page: tasksPage, nav: 'tasks' },
  { pattern: /^\/ui\/tasks\/(?<id>[^/]+)\/?$/, page: taskPage, nav: 'tasks' },
  { pattern: /^\/ui\/instances\/?$/, page: instancesPage, nav: 'instances' },
  { pattern: /^\/ui\/launch\/?$/, page: launchPage, nav: 'launch' },
];

let leave: (() => void) | void;
let prompting = false;
let firstRender = true;

function navigate(url: string, options: { replace?: boolean } = {}): void {
  if (options.replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

function title(text: string): void {
  document.title = `${text} · ec2-api console`;
}

/** The path and query of the page on screen. */
let rendered = '';

function render(): void {
  rendered = location.pathname + location.search;
  leave?.();
  leave = undefined;
  prompting = false;
  const path = location.pathname;
  const route = ROUTES.find((r) => r.pattern.test(path));
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav.main-nav a')) {
    if (a.dataset.nav === route?.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!route) {
    title('Not found');
    fill(main, h('h1', { tabindex: '-1' }, 'No such page'), h('p', null, 'The console has no page here. ', h('a', { href: '/ui', 'data-route': '' }, 'Go to the tasks')));
  } else {
    const params = (route.pattern.exec(path)?.groups ?? {}) as Record<string, string>;
    const ctx: PageContext = {
      main,
      params: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, decodeURIComponent(v)])),
      query: new URLSearchParams(location.search),
      navigate,
      replaceUrl: (url) => {
        history.replaceState(null, '', url);
        rendered = location.pathname + location.search;
      },
      title,
    };
    leave = route.page(ctx);
  }
  renderSession();
  // After a navigation, keyboard and screen-reader users start at the new page's heading.
  if (!firstRender) main.querySelector<HTMLElement>('h1')?.focus();
  firstRender = false;
}

function renderSession(): void {
  fill(
    session,
    token.get()
      ? h(
          'button',
          {
            type: 'button',
            class: 'subtle small',
            title: 'Remove the API token from this tab',
            onclick: () => {
              token.clear();
              feed.stop();
              render();
            },
          },
          'Forget token',
        )
      : null,
  );
}

/** The service wants a token (401): ask for one, check it, keep it for this tab's session. */
function promptForToken(serverMessage: string, hadToken: boolean): void {
  if (prompting) return;
  leave?.();
  leave = undefined;
  prompting = true;
  feed.stop();
  if (hadToken) token.clear();
  renderSession();
  title('API token needed');

  const error = h('p', { id: 'token-error', class: 'field-error', hidden: true, role: 'alert' });
  const input = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    required: true,
    autocomplete: 'off',
    spellcheck: 'false',
    'aria-describedby': 'token-hint token-error',
  });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Use this token');
  const form = h(
    'form',
    { class: 'token-form', novalidate: true, 'aria-labelledby': 'token-heading' },
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'API token'), input, h('p', { id: 'token-hint', class: 'hint' }, 'It is kept in this tab’s session storage until the tab is closed, and sent as an Authorization: Bearer header. Never in a cookie or a URL.'), error),
    h('div', { class: 'actions' }, submit),
  );
  fill(
    main,
    h('h1', { id: 'token-heading', tabindex: '-1' }, 'This service needs an API token'),
    h('p', null, 'It was started with API_TOKENS, so every call must carry one of them. Ask whoever runs it for a token.'),
    hadToken ? h('p', { class: 'notice' }, `The token this tab had is no longer accepted: ${serverMessage}`) : null,
    form,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void check();
  });
  const check = async () => {
    const value = input.value.trim();
    error.hidden = true;
    input.removeAttribute('aria-invalid');
    if (!value) {
      fill(error, 'Enter a token.');
      error.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    submit.disabled = true;
    try {
      await api('/tasks?limit=1', { token: value, quiet401: true });
      token.set(value);
      input.value = '';
      prompting = false;
      render();
      // The feed stopped at the 401; the banner listens to it whatever the page.
      feed.resume();
      main.querySelector<HTMLElement>('h1')?.focus();
    } catch (e) {
      const refused = (e as ApiError).status === 401;
      fill(error, refused ? `That token was refused: ${(e as ApiError).message}.` : `The token could not be checked: ${(e as ApiError).message}`);
      error.hidden = false;
      if (refused) input.setAttribute('aria-invalid', 'true');
      input.select();
      input.focus();
    } finally {
      submit.disabled = false;
    }
  };
  input.focus();
}

onAuthRequired(promptForToken);

// Links inside the console are followed here, without a page load.
document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const a = (event.target as Element).closest?.('a');
  // Only links to console pages; "#main" (the skip link) and the rest behave as usual.
  if (!a || a.target || !a.getAttribute('href')?.startsWith('/ui') || a.origin !== location.origin) return;
  event.preventDefault();
  if (a.pathname + a.search !== location.pathname + location.search) navigate(a.pathname + a.search);
});
// Back and Forward; a change of the #fragment alone (the skip link) is not a new page.
window.addEventListener('popstate', () => {
  if (location.pathname + location.search !== rendered) render();
});

startBanner(document.getElementById('where') as HTMLElement, document.getElementById('load') as HTMLElement, document.getElementById('live') as HTMLElement);
render();
