/**
 * Keeps one informer (client-node's ListWatch) alive and says truthfully whether its
 * cache can be trusted.
 *
 * client-node's `start()` resolves even when its LIST fails (it reports the failure
 * through the `error` callback and stops), so "start returned" is not "synced". We count
 * errors around each start: a start is good only if no error came during it. Failed
 * restarts back off exponentially with jitter up to a cap (client-go's reflector does
 * the same) instead of hammering a sick API server; the attempt count is reset only once
 * the watch has stayed up for a while, so a flapping server keeps the long delays.
 */
import type { Logger } from 'pino';
import { errorMessage, sleep } from './retry.ts';

export interface Startable {
  start(): Promise<void>;
  stop(): Promise<void> | void;
  on(verb: 'error', cb: (err: unknown) => void): void;
}

export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  /** Healthy this long resets the attempt count. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, capMs: 30_000, resetAfterMs: 60_000 };

/** Delay before restart attempt `attempt` (1-based): base·2^(n-1), capped, jittered to 50-100%. */
export function restartDelay(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  const raw = Math.min(o.capMs, o.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(raw * (0.5 + random() / 2));
}

export interface SupervisorOptions {
  name: string;
  log: Logger;
  backoff?: BackoffOptions;
  /** Called after a restart re-listed the cache (not after the first start). */
  onResynced: () => void;
  /** Called whenever `synced` changes. */
  onSyncChange?: (synced: boolean) => void;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export class SupervisedInformer {
  private readonly inf: Startable;
  private readonly o: SupervisorOptions;
  private readonly backoff: BackoffOptions;
  private readonly now: () => number;
  private readonly pause: (ms: number) => Promise<void>;
  private errors = 0;
  private attempts = 0;
  private healthySince = 0;
  private down: number | undefined;
  private restarting = false;
  private stopped = false;
  private ok = false;
  /** Restart attempts so far (for tests and metrics). */
  restarts = 0;

  constructor(inf: Startable, o: SupervisorOptions) {
    this.inf = inf;
    this.o = o;
    this.backoff = o.backoff ?? DEFAULT_BACKOFF;
    this.now = o.now ?? Date.now;
    this.pause = o.sleep ?? sleep;
    inf.on('error', (err) => this.failed(err));
  }

  get synced(): boolean {
    return this.ok;
  }

  /** First start; keeps retrying in the background if it fails. Resolves once synced or stopped. */
  async start(): Promise<void> {
    if (await this.tryStart()) return;
    await new Promise<void>((resolve) => {
      const wait = (): void => {
        if (this.ok || this.stopped) resolve();
        else setTimeout(wait, 100).unref();
      };
      wait();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.inf.stop();
  }

  private setOk(ok: boolean): void {
    if (ok === this.ok) return;
    this.ok = ok;
    this.o.onSyncChange?.(ok);
  }

  private async tryStart(): Promise<boolean> {
    const before = this.errors;
    await this.inf.start();
    if (this.errors !== before || this.stopped) return false;
    this.healthySince = this.now();
    this.setOk(true);
    return true;
  }

  private failed(err: unknown): void {
    this.errors++;
    if (this.stopped) return;
    if (this.ok && this.now() - this.healthySince >= this.backoff.resetAfterMs) this.attempts = 0;
    this.down ??= this.now();
    this.setOk(false);
    this.o.log.warn({ informer: this.o.name, err: errorMessage(err) }, 'watch failed; cache not trusted');
    if (!this.restarting) void this.restartLoop();
  }

  private async restartLoop(): Promise<void> {
    this.restarting = true;
    try {
      while (!this.stopped && !this.ok) {
        this.attempts++;
        const delayMs = restartDelay(this.attempts, this.backoff, this.o.random);
        this.o.log.info(
          { informer: this.o.name, attempt: this.attempts, delayMs },
          'restarting watch after backoff',
        );
        await this.pause(delayMs);
        if (this.stopped) return;
        this.restarts++;
        if (await this.tryStart()) {
          this.o.log.info(
            {
              informer: this.o.name,
              attempts: this.attempts,
              downMs: this.down === undefined ? 0 : this.now() - this.down,
            },
            'watch restarted; cache re-listed',
          );
          this.down = undefined;
          this.o.onResynced();
        } else {
          this.o.log.warn({ informer: this.o.name, attempt: this.attempts }, 'watch restart failed');
        }
      }
    } finally {
      this.restarting = false;
    }
  }
}
