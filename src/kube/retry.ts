/**
 * Client-side protection for the API server: retry with jittered exponential backoff on
 * 429, 5xx and lost connections (the write budget is fair-limiter.ts). Other errors (404, 409, 422, 403) are answers,
 * not failures to retry.
 */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** HTTP status of a client-node ApiException or a fetch-style error, if any. */
export function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** A write refused locally because this process no longer holds the leader lease. Never retried. */
export class NotLeaderError extends Error {
  constructor(what = 'write') {
    super(`${what} refused: this process does not hold the leader lease`);
    this.name = 'NotLeaderError';
  }
}

/** A call that did not answer within its deadline. */
export class DeadlineError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no answer within ${ms} ms`);
    this.name = 'DeadlineError';
  }
}

/** Rejects with DeadlineError when `call` has not settled within `ms` (the call itself is left to finish). */
export function withDeadline<T>(call: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(what, ms)), ms);
  });
  return Promise.race([call, deadline]).finally(() => clearTimeout(timer));
}

export function isTransient(err: unknown): boolean {
  if (err instanceof NotLeaderError) return false;
  const status = statusOf(err);
  if (status !== undefined) return status === 429 || status >= 500;
  // No HTTP status: the request never got an answer (refused, reset, timed out).
  return true;
}

export interface RetryOptions {
  attempts?: number;
  baseMs?: number;
  maxMs?: number;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

export async function withRetry<T>(fn: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const attempts = opts.attempts ?? 6;
  const base = opts.baseMs ?? 200;
  const max = opts.maxMs ?? 10_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= attempts || !isTransient(err)) throw err;
      const delay = Math.min(max, base * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      opts.onRetry?.(err, attempt, delay);
      await sleep(delay);
    }
  }
}

/** A short description of an API error for logs and events. */
export function errorMessage(err: unknown): string {
  const body = (err as { body?: unknown } | null)?.body;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: string };
      if (parsed.message) return parsed.message;
    } catch {
      /* not JSON */
    }
  } else if (body && typeof body === 'object' && 'message' in body) {
    return String(body.message);
  }
  // Not only Errors carry a message: a WebSocket's ErrorEvent (client-node's Exec) does too.
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(err);
}
