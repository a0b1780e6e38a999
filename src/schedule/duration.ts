/** Retention durations: a number and a unit (s m h d w), combinable, as in `1d12h`. */

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 } as const;
const WHOLE = /^(?:\d+[smhdw])+$/;
const PART = /(\d+)([smhdw])/g;

export class DurationError extends Error {}

/** Parses a duration to milliseconds; throws DurationError with the accepted syntax on bad input. */
export function parseDuration(text: string): number {
  if (!WHOLE.test(text)) {
    throw new DurationError(
      `"${text}" is not a duration: use a number and a unit (s m h d w), combinable, e.g. 90m, 36h, 7d, 1d12h, 2w`,
    );
  }
  let seconds = 0;
  for (const [, amount, unit] of text.matchAll(PART)) {
    seconds += Number(amount) * UNIT_SECONDS[unit as keyof typeof UNIT_SECONDS];
  }
  if (seconds === 0)
    throw new DurationError(`"${text}" is zero: an expiry must be longer than zero, e.g. 7d`);
  if (!Number.isSafeInteger(seconds * 1000)) throw new DurationError(`"${text}" is too long`);
  return seconds * 1000;
}

/** Formats milliseconds compactly (largest units first), the inverse of parseDuration for whole seconds. */
export function formatDuration(ms: number): string {
  let rest = Math.round(Math.abs(ms) / 1000);
  if (rest === 0) return '0s';
  let out = '';
  for (const unit of ['w', 'd', 'h', 'm', 's'] as const) {
    const n = Math.floor(rest / UNIT_SECONDS[unit]);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * UNIT_SECONDS[unit];
    }
  }
  return (ms < 0 ? '-' : '') + out;
}
