// The launch form: a username and a password for the login the instance
// gets, and an optional Idempotency-Key. The password is read from its field
// only to go into the POST body: never into a URL, a log, storage, or any
// variable that outlives the request; the field is emptied once accepted.
import { api, ApiError } from '../api.js';
import { onHealth } from '../banner.js';
import { fill, h } from '../dom.js';
import type { Page } from '../page.js';
import type { Task } from '../../api/documents.js';
import { PASSWORD, USERNAME } from '../../api/vocabulary.js';

const LOGIN_NAME = new RegExp(USERNAME.pattern);
const PRINTABLE = new RegExp(PASSWORD.pattern, 'u');

interface FieldParts {
  wrap: HTMLElement;
  input: HTMLInputElement;
  error: HTMLElement;
}

function field(id: string, label: string, hint: string, attrs: Record<string, string | boolean>): FieldParts {
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const input = h('input', { id, name: id, 'aria-describedby': `${hintId} ${errorId}`, ...attrs });
  const error = h('p', { id: errorId, class: 'field-error', hidden: true });
  const wrap = h('div', { class: 'field' }, h('label', { for: id }, label), input, h('p', { id: hintId, class: 'hint' }, hint), error);
  return { wrap, input, error };
}

export const launchPage: Page = (ctx) => {
  ctx.title('Launch an instance');
  const username = field('username', 'Username', `The login created on the instance: ${USERNAME.description}. Not a system account (root, ec2-user, …).`, {
    type: 'text',
    required: true,
    maxlength: String(USERNAME.maxLength),
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
  });
  const password = field('password', 'Password', `For that login (SSH password login): ${PASSWORD.minLength}–${PASSWORD.maxLength} characters. Sent once, in the request body; the service keeps only its hash.`, {
    type: 'password',
    required: true,
    minlength: String(PASSWORD.minLength),
    maxlength: String(PASSWORD.maxLength),
    autocomplete: 'new-password',
  });
  const key = field('idempotency-key', 'Idempotency-Key (optional)', 'Send the same key again and you get the same task, never a second instance: useful when unsure whether a launch went through.', {
    type: 'text',
    maxlength: '255',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const where = h('p', { class: 'launch-where' });
  const formError = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Launch instance');
  const form = h(
    'form',
    { class: 'launch', method: 'post', novalidate: true, 'aria-labelledby': 'launch-heading' },
    where,
    username.wrap,
    password.wrap,
    key.wrap,
    formError,
    h('div', { class: 'actions' }, submit),
  );
  fill(ctx.main, h('div', { class: 'page-head' }, h('h1', { tabindex: '-1', id: 'launch-heading' }, 'Launch an instance')), form);

  const stopHealth = onHealth((health) => {
    where.className = `launch-where where-${health.cloud.kind === 'local-emulator' ? 'local' : health.cloud.kind === 'aws' ? 'aws' : 'endpoint'}`;
    where.textContent =
      health.cloud.kind === 'local-emulator'
        ? 'This launches on the local EC2 emulator: nothing real is started.'
        : health.cloud.kind === 'aws'
          ? `This launches a real instance on AWS in ${health.cloud.region}, billed to the account.`
          : `This launches on the EC2 endpoint ${health.cloud.endpoint ?? ''} (${health.cloud.region}).`;
  });

  const fields: Record<string, FieldParts> = { username, password, 'idempotency-key': key };
  const setError = (parts: FieldParts, message: string | null) => {
    parts.error.hidden = !message;
    parts.error.textContent = message ?? '';
    if (message) parts.input.setAttribute('aria-invalid', 'true');
    else parts.input.removeAttribute('aria-invalid');
  };
  // An error is about what was typed: typing again clears it.
  for (const parts of Object.values(fields)) parts.input.addEventListener('input', () => setError(parts, null));

  const check = (): FieldParts | null => {
    const problems: [FieldParts, string | null][] = [
      [username, !username.input.value ? 'Enter a username.' : LOGIN_NAME.test(username.input.value) ? null : `Use ${USERNAME.description}.`],
      [
        password,
        password.input.value.length < PASSWORD.minLength || password.input.value.length > PASSWORD.maxLength
          ? `The password must be ${PASSWORD.minLength} to ${PASSWORD.maxLength} characters.`
          : PRINTABLE.test(password.input.value)
            ? null
            : 'The password may not hold control characters.',
      ],
      [key, key.input.value && !/^[\x21-\x7E]{1,255}$/.test(key.input.value) ? 'Use printable ASCII without spaces, up to 255 characters.' : null],
    ];
    let first: FieldParts | null = null;
    for (const [parts, message] of problems) {
      setError(parts, message);
      if (message && !first) first = parts;
    }
    return first;
  };

  let closed = false;
  form.addEventListener('submit', (event) => {
    // Always: a form that submitted itself would send the password somewhere by GET or POST.
    event.preventDefault();
    void send();
  });

  const send = async () => {
    formError.hidden = true;
    const invalid = check();
    if (invalid) {
      invalid.input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Launching…';
    try {
      const idempotencyKey = key.input.value;
      const { body } = await api<Task>('/instances', {
        method: 'POST',
        json: { username: username.input.value, password: password.input.value },
        headers: idempotencyKey ? { 'idempotency-key': idempotencyKey } : {},
      });
      password.input.value = '';
      if (!closed) ctx.navigate(`/ui/tasks/${encodeURIComponent(body.task_id)}`);
    } catch (error) {
      if (closed) return;
      const e = error as ApiError;
      const target = e.field ? fields[e.field] : undefined;
      if (target) {
        setError(target, e.message);
        target.input.focus();
      } else {
        const retry = e.headers?.get('retry-after');
        formError.hidden = false;
        fill(formError, e.status === 401 ? 'The service needs a token first.' : `The launch was refused: ${e.message}${retry ? ` (try again in ${retry} s)` : ''}`);
      }
    } finally {
      if (!closed) {
        submit.disabled = false;
        submit.textContent = 'Launch instance';
      }
    }
  };

  return () => {
    closed = true;
    stopHealth();
  };
};
