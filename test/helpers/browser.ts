// Browser tests: Debian's Chromium driven by playwright-core, against the real
// service (listening on a loopback port) and moto.
//
// Every page records what a careful reviewer would want to know: console
// errors (a CSP violation shows up as one), uncaught exceptions, and every
// request that left for another origin. A test that fails keeps a screenshot
// in test-results/console/ (git-ignored); with UPDATE_SCREENSHOTS=1 the
// pictures of docs/console.md in docs/screenshots/ are written too.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { projectRoot } from '../../src/config.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const FAILURES_DIR = path.join(projectRoot, 'test-results', 'console');
export const DOCS_DIR = path.join(projectRoot, 'docs', 'screenshots');
export const UPDATE_SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1';

export const DESKTOP = { width: 1280, height: 860 };
export const PHONE = { width: 390, height: 844 };

/** Builds the console into dist/console when it is missing or older than its sources (npm test has built it already). */
export function ensureConsoleBuilt(): void {
  const src = path.join(projectRoot, 'src', 'console');
  const out = path.join(projectRoot, 'dist', 'console');
  const newest = (dir: string): number =>
    Math.max(0, ...fs.readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).mtimeMs)));
  const built = path.join(out, 'main.js');
  const sources = Math.max(newest(src), newest(path.join(projectRoot, 'src', 'api'))); // the console builds src/api's modules too
  if (fs.existsSync(built) && fs.existsSync(path.join(out, 'index.html')) && fs.statSync(built).mtimeMs >= sources) return;
  execFileSync(process.execPath, [path.join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(src, 'tsconfig.json')], { cwd: projectRoot });
  for (const file of ['index.html', 'console.css', 'favicon.svg']) fs.copyFileSync(path.join(src, file), path.join(out, file));
}

/** Chromium, headless; `extraArgs` such as --host-resolver-rules for a test that needs its own names. */
export async function launchBrowser(extraArgs: string[] = []): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: install Debian's chromium (npm test does it when run as root) or set CHROMIUM_PATH`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extraArgs],
  });
}

/** Waits until one of the locator's elements shows the text. */
export const until = (locator: Locator, text: RegExp | string, timeout = 20_000) => locator.filter({ hasText: text }).first().waitFor({ timeout });

/** The app on a loopback port (idempotent), and its base URL. */
export async function serve(app: FastifyInstance): Promise<string> {
  if (!app.server.listening) await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address() as { port: number };
  return `http://127.0.0.1:${address.port}`;
}

export interface ConsolePage {
  page: Page;
  context: BrowserContext;
  /** Console errors, uncaught exceptions and CSP violations seen so far. */
  problems: string[];
  /** Every URL the page requested. */
  requests: string[];
  /** Requests that went to another origin than the service. */
  foreign: string[];
  close(): Promise<void>;
}

/** A fresh browser context (no storage, no cookies) with one page on the console. */
export async function openConsole(browser: Browser, base: string, viewport = DESKTOP): Promise<ConsolePage> {
  const context = await browser.newContext({ viewport, baseURL: base, reducedMotion: 'reduce', colorScheme: 'light', locale: 'en-GB' });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const problems: string[] = [];
  const requests: string[] = [];
  const foreign: string[] = [];
  const origin = new URL(base).origin;
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`exception: ${error.message}`));
  page.on('request', (request) => {
    requests.push(request.url());
    if (new URL(request.url()).origin !== origin) foreign.push(request.url());
  });
  return { page, context, problems, requests, foreign, close: () => context.close() };
}

/** Expected refusals the browser logs as console errors (a 401 the test provoked, say). */
export function unexpected(problems: string[], allowed: RegExp[] = []): string[] {
  return problems.filter((p) => !allowed.some((re) => re.test(p)));
}

interface TapLike {
  name: string;
  passing(): boolean;
  teardown(fn: () => unknown): void;
}

/** Keeps a screenshot of `page` when the test `t` fails (checked at its end). */
export function screenshotOnFailure(t: TapLike, page: Page, label = t.name): void {
  t.teardown(async () => {
    if (t.passing() || page.isClosed()) return;
    fs.mkdirSync(FAILURES_DIR, { recursive: true });
    const file = path.join(FAILURES_DIR, `${label.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').slice(0, 80)}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
    console.error(`# screenshot of the failed test: ${path.relative(projectRoot, file)}`);
  });
}

/** A picture for docs/console.md, written only with UPDATE_SCREENSHOTS=1 (a normal run leaves the tree clean). */
export async function docScreenshot(page: Page, name: string, options: { fullPage?: boolean } = {}): Promise<void> {
  if (!UPDATE_SCREENSHOTS) return;
  fs.mkdirSync(DOCS_DIR, { recursive: true });
  // No caret or focus ring left over from typing.
  await page.evaluate('document.activeElement && document.activeElement.blur && document.activeElement.blur()');
  await page.screenshot({ path: path.join(DOCS_DIR, `${name}.png`), fullPage: options.fullPage ?? false, animations: 'disabled' });
}
