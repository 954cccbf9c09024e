// Building the page from data: every string becomes a text node or an
// attribute value, never markup. The page's CSP requires Trusted Types, so
// innerHTML and its kin would throw even if someone tried.

export type Child = Node | string | number | null | undefined | false | Child[];
type AttrValue = string | number | boolean | null | undefined;
export type Attrs = Record<string, AttrValue | ((event: Event) => void)>;

/** An element with attributes (`on…` functions become listeners; true/false toggle) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, '');
    else if (value !== false && value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. */
export function fill(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/** A link inside the console: followed without a page load (see main.ts). */
export function link(href: string, attrs: Attrs | null, ...children: Child[]): HTMLAnchorElement {
  return h('a', { ...attrs, href, 'data-route': '' }, ...children);
}

const politeRegion = () => document.getElementById('announce');

/** Says something to screen-reader users (an aria-live region), without moving focus. */
export function announce(message: string): void {
  const region = politeRegion();
  if (!region) return;
  // A change of text is what is announced: clear first, then set.
  region.textContent = '';
  window.setTimeout(() => (region.textContent = message), 50);
}

let idCounter = 0;
/** A document-unique id for label/aria wiring. */
export const uid = (prefix: string) => `${prefix}-${++idCounter}`;

/** A table cell labelled for the phone layout, where each row becomes a card of "label: value" lines. */
export function cell(label: string, attrs: Attrs | null, ...children: Child[]): HTMLTableCellElement {
  return h('td', { ...attrs, 'data-label': label }, h('div', { class: 'cell' }, ...children));
}
