/**
 * Time zones from the system's tz database, as Go, cron and glibc read it: the TZif file
 * (RFC 8536) under $TZDIR or /usr/share/zoneinfo. Asking Node's ICU instead (Intl, which luxon
 * uses) maps ICU's data and code into the process: 8 MiB of a long-lived controller's RSS for
 * one formatter (BENCHMARKS.md). A name the tz database lacks (or a system without one) is
 * looked up in ICU through luxon, so every name Node knows still works. Reading the database is
 * the one I/O the pure decide modules (cron, retention) reach, as they reached ICU's data before.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as Luxon from 'luxon';

/** What cron and retention ask of a zone; luxon's IANAZone has the same shape. */
export interface TimeZone {
  readonly name: string;
  readonly isValid: boolean;
  /** The offset from UTC in minutes at the instant `ms`, as luxon gives it (LMT offsets are fractional). */
  offset(ms: number): number;
}

/** A POSIX TZ rule date: Jn (day 1-365, Feb 29 never counted), n (day 0-365), or Mm.w.d. */
type RuleDate =
  | { kind: 'julian1'; day: number }
  | { kind: 'julian0'; day: number }
  | { kind: 'month'; month: number; week: number; weekday: number };

/** The footer's TZ string (times after the last transition), e.g. `CET-1CEST,M3.5.0,M10.5.0/3`. */
interface PosixRule {
  /** Standard time's offset from UTC, seconds east. */
  std: number;
  /** Daylight time's, when the zone has it. */
  dst?: { offset: number; start: RuleDate; startTime: number; end: RuleDate; endTime: number };
}

export class TzifError extends Error {}

const DAY_S = 86_400;

/** A TZif file's contents: transitions (seconds), the offset after each, and the footer's rule. */
interface Tzif {
  transitions: number[];
  offsets: number[];
  /** The offset before the first transition (local time type 0). */
  initial: number;
  rule?: PosixRule | undefined;
}

/** Parses a TZif file. */
export function parseTzif(data: Buffer): Tzif {
  if (data.length < 44 || data.toString('latin1', 0, 4) !== 'TZif') throw new TzifError('not a TZif file');
  const version = data[4];
  const header = (at: number) => {
    const n = (i: number) => data.readUInt32BE(at + 20 + 4 * i);
    return { isut: n(0), isstd: n(1), leap: n(2), time: n(3), type: n(4), char: n(5) };
  };
  let at = 0;
  let h = header(0);
  let timeSize = 4;
  if (version !== 0) {
    // Version 2+: skip the 32-bit block to the 64-bit one, which also covers times past 2038.
    at = 44 + h.time * 5 + h.type * 6 + h.char + h.leap * 8 + h.isstd + h.isut;
    if (data.toString('latin1', at, at + 4) !== 'TZif') throw new TzifError('second header missing');
    h = header(at);
    timeSize = 8;
  }
  // Leap-second zones (right/…) count TAI-like seconds; ICU and cron know none of them.
  if (h.leap !== 0) throw new TzifError('leap-second zones are not supported');
  if (h.type === 0) throw new TzifError('no local time types');
  let p = at + 44;
  const transitions: number[] = [];
  for (let i = 0; i < h.time; i++, p += timeSize) {
    transitions.push(timeSize === 8 ? Number(data.readBigInt64BE(p)) : data.readInt32BE(p));
  }
  const typeOf: number[] = [];
  for (let i = 0; i < h.time; i++) typeOf.push(data[p++]!);
  const typeOffsets: number[] = [];
  for (let i = 0; i < h.type; i++, p += 6) typeOffsets.push(data.readInt32BE(p));
  p += h.char + h.leap * (timeSize + 4) + h.isstd + h.isut;
  let rule: PosixRule | undefined;
  if (version !== 0 && data[p] === 0x0a) {
    const end = data.indexOf(0x0a, p + 1);
    const text = data.toString('latin1', p + 1, end < 0 ? data.length : end);
    if (text) rule = parsePosixTz(text);
  }
  const offsets = typeOf.map((t) => {
    const o = typeOffsets[t];
    if (o === undefined) throw new TzifError(`transition to type ${t}, of ${h.type}`);
    return o;
  });
  return { transitions, offsets, initial: typeOffsets[0]!, rule };
}

/** Parses a POSIX TZ string with RFC 8536's extensions (hours -167 to 167 in rule times). */
export function parsePosixTz(text: string): PosixRule {
  let i = 0;
  const fail = (what: string): never => {
    throw new TzifError(`TZ string "${text}": ${what} at ${i}`);
  };
  const name = () => {
    if (text[i] === '<') {
      const close = text.indexOf('>', i);
      if (close < 0) fail('unclosed <');
      i = close + 1;
    } else {
      const start = i;
      while (i < text.length && /[A-Za-z]/.test(text[i]!)) i++;
      if (i - start < 3) fail('a zone abbreviation of 3 letters or more');
    }
  };
  /** [+-]hh[:mm[:ss]] in seconds. */
  const time = (): number => {
    let sign = 1;
    if (text[i] === '+' || text[i] === '-') sign = text[i++] === '-' ? -1 : 1;
    const m = /^(\d{1,3})(?::(\d{1,2}))?(?::(\d{1,2}))?/.exec(text.slice(i));
    if (!m) return fail('a time');
    i += m[0].length;
    return sign * (Number(m[1]) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0));
  };
  const date = (): RuleDate => {
    if (text[i] === 'M') {
      const m = /^M(\d{1,2})\.(\d)\.(\d)/.exec(text.slice(i));
      if (!m) return fail('Mm.w.d');
      i += m[0].length;
      const [month, week, weekday] = [Number(m[1]), Number(m[2]), Number(m[3])];
      if (month < 1 || month > 12 || week < 1 || week > 5 || weekday > 6) fail('Mm.w.d out of range');
      return { kind: 'month', month, week, weekday };
    }
    const julian = text[i] === 'J';
    if (julian) i++;
    const m = /^\d{1,3}/.exec(text.slice(i));
    if (!m) return fail('a rule date');
    i += m[0].length;
    const day = Number(m[0]);
    if (julian ? day < 1 || day > 365 : day > 365) fail('a day out of range');
    return julian ? { kind: 'julian1', day } : { kind: 'julian0', day };
  };
  const ruleTime = () => {
    if (text[i] !== '/') return 2 * 3600;
    i++;
    return time();
  };
  name();
  // POSIX counts west of Greenwich as positive (and 0 - x: no -0 for a zone at UTC).
  const std = 0 - time();
  if (i === text.length) return { std };
  name();
  const dstOffset = i < text.length && text[i] !== ',' ? 0 - time() : std + 3600;
  // A TZ string with a daylight name and no rule: POSIX leaves it to the implementation;
  // glibc takes the US rules, as here.
  let start: RuleDate = { kind: 'month', month: 3, week: 2, weekday: 0 };
  let end: RuleDate = { kind: 'month', month: 11, week: 1, weekday: 0 };
  let startTime = 2 * 3600;
  let endTime = 2 * 3600;
  if (text[i] === ',') {
    i++;
    start = date();
    startTime = ruleTime();
    if (text[i++] !== ',') fail('a comma before the end rule');
    end = date();
    endTime = ruleTime();
  }
  if (i !== text.length) fail('trailing text');
  return { std, dst: { offset: dstOffset, start, startTime, end, endTime } };
}

const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

/** Seconds from the start of `year` (UTC-based day counting) to 00:00 of the rule's date. */
function ruleDay(year: number, d: RuleDate): number {
  switch (d.kind) {
    case 'julian1':
      return (d.day - 1 + (isLeap(year) && d.day >= 60 ? 1 : 0)) * DAY_S;
    case 'julian0':
      return d.day * DAY_S;
    case 'month': {
      const yearStart = Date.UTC(year, 0, 1);
      const first = Date.UTC(year, d.month - 1, 1);
      const weekdayOfFirst = new Date(first).getUTCDay();
      let day = 1 + ((d.weekday - weekdayOfFirst + 7) % 7) + (d.week - 1) * 7;
      const daysInMonth = new Date(Date.UTC(year, d.month, 0)).getUTCDate();
      while (day > daysInMonth) day -= 7; // week 5: the last such weekday
      return (first - yearStart) / 1000 + (day - 1) * DAY_S;
    }
  }
}

/** The offset (seconds east) the POSIX rule gives at the instant `t` (seconds). */
export function posixOffset(rule: PosixRule, t: number): number {
  const dst = rule.dst;
  if (!dst) return rule.std;
  const year = new Date((t + rule.std) * 1000).getUTCFullYear();
  const yearStart = Date.UTC(year, 0, 1) / 1000;
  // The change to daylight time happens at a standard-time wall clock, the change back at a daylight one.
  const start = yearStart + ruleDay(year, dst.start) + dst.startTime - rule.std;
  const end = yearStart + ruleDay(year, dst.end) + dst.endTime - dst.offset;
  const inDst = start < end ? t >= start && t < end : t < end || t >= start;
  return inDst ? dst.offset : rule.std;
}

class TzifZone implements TimeZone {
  readonly isValid = true;
  readonly name: string;
  private readonly tzif: Tzif;
  constructor(name: string, tzif: Tzif) {
    this.name = name;
    this.tzif = tzif;
  }

  offset(ms: number): number {
    if (!Number.isFinite(ms)) return NaN;
    const { transitions, offsets, initial, rule } = this.tzif;
    const t = Math.floor(ms / 1000);
    const n = transitions.length;
    if (n === 0 || t < transitions[0]!) return (n === 0 && rule ? posixOffset(rule, t) : initial) / 60;
    if (t >= transitions[n - 1]! && rule) return posixOffset(rule, t) / 60;
    let lo = 0; // transitions[lo] <= t
    let hi = n;
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if (transitions[mid]! <= t) lo = mid;
      else hi = mid;
    }
    return offsets[lo]! / 60;
  }
}

const UTC: TimeZone = { name: 'UTC', isValid: true, offset: () => 0 };

/** Names looked up in the tz database: IANA's style (each part capitalised), so not
 * `posixrules`, `localtime`, `right/…` or `zone.tab`, nor a path out of the directory. */
const IANA_NAME = /^[A-Z][A-Za-z0-9_+-]*(\/[A-Z][A-Za-z0-9_+-]*)*$/;

/** The zone of `name` in the tz database at `dir`; undefined when it has none (or not in TZif). */
export function readZone(name: string, dir: string): TimeZone | undefined {
  if (!IANA_NAME.test(name) || name === 'Factory') return undefined;
  try {
    return new TzifZone(name, parseTzif(readFileSync(join(dir, name))));
  } catch {
    return undefined; // missing, unreadable or not TZif: ICU decides
  }
}

const require = createRequire(import.meta.url);
/** luxon (and with it ICU) only for a name the tz database lacks. */
const fromIcu = (name: string): TimeZone => (require('luxon') as typeof Luxon).IANAZone.create(name);

const zones = new Map<string, TimeZone>();

/** The zone of an IANA name; `isValid` false when neither the tz database nor ICU knows it. */
export function timeZone(name: string): TimeZone {
  let zone = zones.get(name);
  if (!zone) {
    zone =
      name === 'UTC' || name === 'Etc/UTC'
        ? UTC
        : (readZone(name, process.env.TZDIR || '/usr/share/zoneinfo') ?? fromIcu(name));
    // Invalid names are not kept: a user's typo must not grow the map for the process's life.
    if (zone.isValid) zones.set(name, zone);
  }
  return zone;
}
