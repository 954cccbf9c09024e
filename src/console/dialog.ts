// Asking before something that cannot be undone, in a modal <dialog>: focus
// moves into it, Tab stays inside, Escape says no, and focus returns to the
// button that opened it.
import { h, uid, type Child } from './dom.js';

export interface ConfirmOptions {
  title: string;
  body: Child[];
  confirm: string;
  keep: string;
}

export function confirmDialog({ title, body, confirm, keep }: ConfirmOptions): Promise<boolean> {
  const titleId = uid('dialog-title');
  const bodyId = uid('dialog-body');
  return new Promise((resolve) => {
    const yes = h('button', { type: 'button', class: 'danger', 'data-confirm': '' }, confirm);
    const no = h('button', { type: 'button', autofocus: true }, keep);
    const dialog = h(
      'dialog',
      { class: 'confirm', 'aria-labelledby': titleId, 'aria-describedby': bodyId },
      h('h2', { id: titleId }, title),
      h('div', { id: bodyId }, body),
      h('div', { class: 'actions' }, no, yes),
    );
    let answer = false;
    yes.addEventListener('click', () => {
      answer = true;
      dialog.close();
    });
    no.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.append(dialog);
    dialog.showModal();
    // The safe choice has the focus: Enter right away keeps things as they are.
    no.focus();
  });
}
