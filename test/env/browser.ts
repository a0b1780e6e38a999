/**
 * A real headless browser for tests: Debian's `chromium` (or $SNAPCRON_CHROMIUM), driven
 * over the DevTools protocol with Node's own WebSocket. Loads a page, evaluates expressions
 * in it (the DOM as the browser built it, computed styles, layout), records every request
 * the page makes, and takes full-page screenshots.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The browser binary, or undefined when none is installed. */
export function chromiumPath(): string | undefined {
  const candidates = [process.env.SNAPCRON_CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome'];
  for (const c of candidates) {
    if (!c) continue;
    try {
      return execFileSync('sh', ['-c', `command -v "${c}"`], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      // not this one
    }
  }
  return undefined;
}

interface Message {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
}

export class Browser {
  private readonly proc: ChildProcess;
  private readonly profile: string;
  private ws!: WebSocket;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (m: Message) => void; reject: (e: Error) => void }>();
  private readonly listeners: ((m: Message) => void)[] = [];
  /** Every URL the page requested, in order. */
  readonly requests: string[] = [];

  private constructor(proc: ChildProcess, profile: string) {
    this.proc = proc;
    this.profile = profile;
  }

  /** Starts headless Chromium with a fresh profile and attaches to its first page. */
  static async launch(binary: string, width = 1400, height = 1000): Promise<Browser> {
    const profile = mkdtempSync(join(tmpdir(), 'snapcron-chromium-'));
    const proc = spawn(
      binary,
      [
        '--headless',
        '--no-sandbox', // tests run as root in CI containers
        '--disable-gpu',
        '--hide-scrollbars',
        '--no-first-run',
        '--no-default-browser-check',
        '--remote-debugging-port=0',
        `--user-data-dir=${profile}`,
        `--window-size=${width},${height}`,
        'about:blank',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const browser = new Browser(proc, profile);
    const endpoint = await new Promise<string>((resolve, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`chromium did not start:\n${err}`)), 30_000);
      proc.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /DevTools listening on (ws:\/\/[^\s]+)/.exec(err);
        if (m?.[1]) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      proc.once('exit', (code) => reject(new Error(`chromium exited with ${code}:\n${err}`)));
    });
    const port = new URL(endpoint).port;
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
      type: string;
      webSocketDebuggerUrl: string;
    }[];
    const page = targets.find((t) => t.type === 'page');
    if (!page) throw new Error('chromium has no page target');
    browser.ws = new WebSocket(page.webSocketDebuggerUrl);
    await new Promise<void>((resolve, reject) => {
      browser.ws.addEventListener('open', () => resolve(), { once: true });
      browser.ws.addEventListener('error', () => reject(new Error('cannot attach to chromium')), {
        once: true,
      });
    });
    browser.ws.addEventListener('message', (ev: MessageEvent) => {
      const msg = JSON.parse(String(ev.data)) as Message;
      if (msg.id !== undefined) {
        const w = browser.waiting.get(msg.id);
        browser.waiting.delete(msg.id);
        if (msg.error) w?.reject(new Error(msg.error.message));
        else w?.resolve(msg);
      } else {
        for (const l of browser.listeners) l(msg);
      }
    });
    browser.listeners.push((m) => {
      if (m.method === 'Network.requestWillBeSent') {
        browser.requests.push(String((m.params?.request as { url?: string } | undefined)?.url));
      }
    });
    await browser.send('Page.enable');
    await browser.send('Network.enable');
    await browser.send('Runtime.enable');
    return browser;
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: (m) => resolve(m.result ?? {}), reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  private event(method: string, timeoutMs = 30_000): Promise<Message> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${method} within ${timeoutMs} ms`)), timeoutMs);
      const listener = (m: Message): void => {
        if (m.method !== method) return;
        clearTimeout(timer);
        this.listeners.splice(this.listeners.indexOf(listener), 1);
        resolve(m);
      };
      this.listeners.push(listener);
    });
  }

  /** Opens a URL and waits for its load event. */
  async open(url: string): Promise<void> {
    const loaded = this.event('Page.loadEventFired');
    await this.send('Page.navigate', { url });
    await loaded;
  }

  /** Opens HTML text as a file (file:// URL, like a person opening a saved report). */
  async openHtml(html: string, file: string): Promise<void> {
    writeFileSync(file, html);
    await this.open(`file://${file}`);
  }

  /** Evaluates an expression in the page; its value must be JSON. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = (await this.send('Runtime.evaluate', { expression, returnByValue: true })) as {
      result?: { value?: T };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    };
    if (r.exceptionDetails)
      throw new Error(`${r.exceptionDetails.text}: ${r.exceptionDetails.exception?.description ?? ''}`);
    return r.result?.value as T;
  }

  /** A PNG of the whole page, not just the window. */
  async screenshot(file: string): Promise<void> {
    const metrics = (await this.send('Page.getLayoutMetrics')) as {
      cssContentSize: { width: number; height: number };
    };
    const { width, height } = metrics.cssContentSize;
    const shot = (await this.send('Page.captureScreenshot', {
      format: 'png',
      captureBeyondViewport: true,
      clip: { x: 0, y: 0, width, height: Math.min(height, 16_000), scale: 1 },
    })) as { data: string };
    writeFileSync(file, Buffer.from(shot.data, 'base64'));
  }

  async close(): Promise<void> {
    try {
      this.ws?.close();
    } catch {
      // already closed
    }
    await new Promise<void>((resolve) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) return resolve();
      this.proc.once('exit', () => resolve());
      this.proc.kill('SIGTERM');
      setTimeout(() => this.proc.kill('SIGKILL'), 3000).unref();
    });
    rmSync(this.profile, { recursive: true, force: true });
  }
}
