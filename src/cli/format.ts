import { DateTime } from 'luxon';

/** `2026-03-29T01:00:00Z` — seconds always, milliseconds never. */
export const isoUtc = (t: Date): string => t.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Wall-clock time in a zone with its UTC offset, e.g. `2026-03-29 03:00:00 +02:00`. */
export const localTime = (t: Date, zone: string): string =>
  DateTime.fromJSDate(t, { zone }).toFormat('yyyy-MM-dd HH:mm:ss ZZ');

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
