import { timeZone } from '../tz/time-zone.ts';

/** `2026-03-29T01:00:00Z` — seconds always, milliseconds never. */
export const isoUtc = (t: Date): string => t.toISOString().replace(/\.\d{3}Z$/, 'Z');

const pad2 = (n: number): string => String(n).padStart(2, '0');

/**
 * Wall-clock time in a zone with its UTC offset, e.g. `2026-03-29 03:00:00 +02:00`, from the
 * same zone data the fire times come from (src/tz/time-zone.ts).
 */
export function localTime(t: Date, zone: string): string {
  const offset = timeZone(zone).offset(t.getTime()); // minutes
  const wall = new Date(t.getTime() + offset * 60_000).toISOString();
  const minutes = Math.round(Math.abs(offset));
  const sign = offset < 0 ? '-' : '+';
  return `${wall.slice(0, 10)} ${wall.slice(11, 19)} ${sign}${pad2(Math.floor(minutes / 60))}:${pad2(minutes % 60)}`;
}

/** Renders rows as aligned columns. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
