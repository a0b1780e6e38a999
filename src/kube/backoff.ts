/**
 * Restart backoff for watches (client-go's reflector does the same): exponential with
 * jitter up to a cap, the attempt count reset only once a watch has stayed up for a while,
 * so a flapping API server keeps the long delays.
 */
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
