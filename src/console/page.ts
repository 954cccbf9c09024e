// What the router gives a page, and what a page gives back.

export interface PageContext {
  main: HTMLElement;
  params: Record<string, string>;
  query: URLSearchParams;
  navigate(url: string, options?: { replace?: boolean }): void;
  /** Changes the URL of the page on screen without drawing it again (a filter, say). */
  replaceUrl(url: string): void;
  /** Sets the document title ("<title> · ec2-api console"). */
  title(text: string): void;
}

/** A page renders into ctx.main and returns what to undo when it is left (streams, timers). */
export type Page = (ctx: PageContext) => (() => void) | void;
