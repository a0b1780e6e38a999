/**
 * Time zones from the tz database (src/tz/time-zone.ts), against glibc's reader of the same
 * files: zdump prints every transition with the offset on both sides. ICU (through luxon) may
 * carry a different tz release than the system, so it is the oracle only where a zone has not
 * changed for decades, and for the fallback.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { IANAZone } from 'luxon';
import { describe, expect, it } from 'vitest';
import { parsePosixTz, posixOffset, readZone, timeZone, TzifError } from '../../src/tz/time-zone.ts';

const TZDIR = '/usr/share/zoneinfo';
const MONTHS = 'JanFebMarAprMayJunJulAugSepOctNovDec';

interface Observation {
  zone: string;
  at: number; // ms
  offset: number; // seconds east
}

/** zdump -v's lines: `Zone  Sun Mar 30 00:59:59 2025 UT = Sun Mar 30 01:59:59 2025 CET isdst=0 gmtoff=3600`. */
async function zdump(zones: string[], from: number, to: number): Promise<Observation[]> {
  const { stdout } = await promisify(execFile)('zdump', ['-v', '-c', `${from},${to}`, ...zones], {
    cwd: TZDIR,
    maxBuffer: 256 << 20,
  });
  const out: Observation[] = [];
  const line = /^(\S+)\s+\w{3} (\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) (-?\d+) UT = .* gmtoff=(-?\d+)$/;
  for (const l of stdout.split('\n')) {
    const m = line.exec(l);
    if (!m) continue;
    const [, zone, mon, d, hh, mm, ss, y, off] = m as unknown as string[];
    out.push({
      zone: zone!,
      at: Date.UTC(Number(y), MONTHS.indexOf(mon!) / 3, Number(d), Number(hh), Number(mm), Number(ss)),
      offset: Number(off),
    });
  }
  return out;
}

/** Zones ICU knows that the system's tz database has too. */
const zones = Intl.supportedValuesOf('timeZone').filter((z) => readZone(z, TZDIR) !== undefined);

const byZone = (obs: Observation[]): Map<string, Observation[]> => {
  const m = new Map<string, Observation[]>();
  for (const o of obs) {
    const list = m.get(o.zone);
    if (list) list.push(o);
    else m.set(o.zone, [o]);
  }
  return m;
};

describe('time zones from the tz database', () => {
  it('gives the offset glibc gives on both sides of every transition of every zone, 1970 to 2060', async () => {
    expect(zones.length).toBeGreaterThan(300);
    const seen = byZone(await zdump(zones, 1970, 2060));
    expect(seen.size).toBeGreaterThan(150); // zones with a transition in the window
    const wrong: string[] = [];
    for (const [zone, obs] of seen) {
      const z = timeZone(zone);
      for (let i = 0; i < obs.length; i++) {
        const o = obs[i]!;
        if (z.offset(o.at) * 60 !== o.offset) wrong.push(`${zone} ${new Date(o.at).toISOString()}`);
        // Between two observations with one offset, no transition of ours either.
        const next = obs[i + 1];
        if (next && next.offset === o.offset && next.at - o.at > 2000) {
          const mid = o.at + Math.floor((next.at - o.at) / 2);
          if (z.offset(mid) * 60 !== o.offset) wrong.push(`${zone} ${new Date(mid).toISOString()} (between)`);
        }
      }
    }
    expect(wrong.slice(0, 20)).toEqual([]);
  }, 120_000);

  it('follows the TZ-string rule after the last transition the file lists, to 2200', async () => {
    const ruled = [
      'Europe/Berlin',
      'America/New_York',
      'Australia/Sydney',
      'Australia/Lord_Howe',
      'Pacific/Chatham',
      'Europe/Dublin',
      'America/Santiago',
      'America/Nuuk',
      'Asia/Jerusalem',
      'Pacific/Auckland',
    ].filter((z) => zones.includes(z));
    const seen = byZone(await zdump(ruled, 2030, 2200));
    let checked = 0;
    for (const [zone, obs] of seen) {
      for (const o of obs) {
        expect(timeZone(zone).offset(o.at) * 60, `${zone} ${new Date(o.at).toISOString()}`).toBe(o.offset);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(ruled.length * 2 * 2 * 150);
  }, 60_000);

  it('agrees with ICU where the zone has not changed since 1993 (property)', () => {
    const stable = [
      'Asia/Shanghai',
      'Asia/Tokyo',
      'Asia/Kolkata',
      'Europe/Berlin',
      'Europe/London',
      'Australia/Sydney',
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...stable),
        fc.integer({ min: Date.UTC(1997, 0, 1), max: Date.UTC(2027, 0, 1) }),
        (zone, t) => timeZone(zone).offset(t) === IANAZone.create(zone).offset(t),
      ),
      { numRuns: 5000 },
    );
  });

  it('asks ICU for a name the tz database lacks, and no one for an unknown name', () => {
    const empty = mkdtempSync(join(tmpdir(), 'tzdir-'));
    expect(readZone('Europe/Berlin', empty)).toBeUndefined();
    // Only IANA-style names are looked up: no paths out of the directory, no posixrules.
    for (const name of [
      '../../etc/passwd',
      'posixrules',
      'localtime',
      'right/Europe/Berlin',
      'Factory',
      'europe/berlin',
    ])
      expect(readZone(name, TZDIR), name).toBeUndefined();
    // ICU knows names case-insensitively; the zone comes from it then.
    const lower = timeZone('europe/berlin');
    expect(lower.isValid).toBe(true);
    expect(lower.constructor.name).toBe('IANAZone'); // luxon's, required: not the class imported here
    expect(lower.offset(Date.UTC(2024, 6, 1))).toBe(120);
    expect(timeZone('Not/AZone').isValid).toBe(false);
    expect(timeZone('Europe/Berlin').constructor.name).toBe('TzifZone');
    expect(timeZone('UTC').offset(Date.UTC(2024, 6, 1))).toBe(0);
  });

  it('treats a damaged file as absent, so ICU decides', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tzdir-'));
    writeFileSync(join(dir, 'Bad'), 'TZif2 but nothing else');
    writeFileSync(join(dir, 'Text'), '# not a zone\n');
    expect(readZone('Bad', dir)).toBeUndefined();
    expect(readZone('Text', dir)).toBeUndefined();
  });
});

describe('POSIX TZ strings', () => {
  const at = (iso: string) => Date.parse(iso) / 1000;
  const hours = (rule: string, iso: string) => posixOffset(parsePosixTz(rule), at(iso)) / 3600;

  it('change at the local wall time the rule names, northern and southern', () => {
    const berlin = 'CET-1CEST,M3.5.0,M10.5.0/3';
    expect(hours(berlin, '2099-03-29T00:59:59Z')).toBe(1);
    expect(hours(berlin, '2099-03-29T01:00:00Z')).toBe(2);
    expect(hours(berlin, '2099-10-25T00:59:59Z')).toBe(2);
    expect(hours(berlin, '2099-10-25T01:00:00Z')).toBe(1);
    const sydney = 'AEST-10AEDT,M10.1.0,M4.1.0/3';
    expect(hours(sydney, '2099-01-01T00:00:00Z')).toBe(11);
    expect(hours(sydney, '2099-07-01T00:00:00Z')).toBe(10);
    expect(hours(sydney, '2099-12-31T23:00:00Z')).toBe(11);
  });

  it('takes negative daylight saving (Dublin), half hours (Lord Howe) and negative rule times (Nuuk)', () => {
    const dublin = 'IST-1GMT0,M10.5.0,M3.5.0/1';
    expect(hours(dublin, '2099-07-01T00:00:00Z')).toBe(1);
    expect(hours(dublin, '2099-01-01T00:00:00Z')).toBe(0);
    const lordHowe = '<+1030>-10:30<+11>-11,M10.1.0,M4.1.0';
    expect(hours(lordHowe, '2099-01-01T00:00:00Z')).toBe(11);
    expect(hours(lordHowe, '2099-07-01T00:00:00Z')).toBe(10.5);
    // Nuuk's rule: daylight from the last Saturday of March at -1:00 local (the Sunday's 01:00 UTC).
    const nuuk = '<-02>2<-01>,M3.5.0/-1,M10.5.0/0';
    expect(hours(nuuk, '2099-03-29T00:59:59Z')).toBe(-2);
    expect(hours(nuuk, '2099-03-29T01:00:00Z')).toBe(-1);
  });

  it('counts Jn without and n with February 29, and keeps all-year daylight time', () => {
    // J60 is March 1 even in a leap year; 59 (zero-based) is February 29 in one.
    expect(hours('XXX0YYY,J60/0,J300/0', '2096-02-29T23:59:59Z')).toBe(0);
    expect(hours('XXX0YYY,J60/0,J300/0', '2096-03-01T00:00:00Z')).toBe(1);
    expect(hours('XXX0YYY,59/0,300/0', '2096-02-29T00:00:00Z')).toBe(1);
    expect(hours('XXX0YYY,59/0,300/0', '2096-02-28T23:59:59Z')).toBe(0);
    for (const iso of ['2099-01-01T00:00:00Z', '2099-06-01T00:00:00Z', '2099-12-31T23:59:59Z'])
      expect(hours('EST5EDT,0/0,J365/25', iso)).toBe(-4);
  });

  it('refuses malformed strings with the place of the fault', () => {
    for (const bad of [
      '',
      'X1',
      'CET-1CEST,M13.1.0,M10.5.0',
      'CET-1CEST,M3.5.0',
      'CET-1CEST,M3.5.0,M10.5.0 junk',
      '<+03-3',
    ])
      expect(() => parsePosixTz(bad), bad).toThrow(TzifError);
  });
});
