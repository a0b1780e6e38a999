import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  derLength,
  namedBits,
  objectIdentifier,
  sequence,
  smallInteger,
  time,
  unsignedInteger,
} from '../../src/tls/der.ts';
import { encodeName, ipAddressBytes } from '../../src/tls/authority.ts';

const hex = (b: Buffer): string => b.toString('hex');

/** Reads one tag-length-value back: what a strict DER reader accepts (minimal lengths only). */
function readTlv(b: Buffer): { tag: number; contents: Buffer; rest: Buffer } {
  const tag = b[0] ?? -1;
  const first = b[1] ?? 0;
  let length = first;
  let offset = 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    expect(count).toBeGreaterThan(0);
    expect(b[2]).not.toBe(0); // no leading zero length byte
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (b[2 + i] ?? 0);
    expect(length).toBeGreaterThanOrEqual(0x80); // long form only when the short cannot say it
    offset = 2 + count;
  }
  return { tag, contents: b.subarray(offset, offset + length), rest: b.subarray(offset + length) };
}

describe('DER encodings', () => {
  it('lengths: short form below 128, else the fewest big-endian bytes', () => {
    expect(hex(derLength(0))).toBe('00');
    expect(hex(derLength(127))).toBe('7f');
    expect(hex(derLength(128))).toBe('8180');
    expect(hex(derLength(255))).toBe('81ff');
    expect(hex(derLength(256))).toBe('820100');
    expect(hex(derLength(65_536))).toBe('83010000');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200_000 }), (n) => {
        const body = Buffer.alloc(n, 7);
        const back = readTlv(sequence(body));
        expect(back.tag).toBe(0x30);
        expect(back.contents.length).toBe(n);
        expect(back.rest.length).toBe(0);
      }),
      { numRuns: 200 },
    );
  });

  it('integers: minimal, and positive (a 0 byte before a set top bit)', () => {
    expect(hex(smallInteger(0))).toBe('020100');
    expect(hex(smallInteger(2))).toBe('020102');
    expect(hex(smallInteger(127))).toBe('02017f');
    expect(hex(smallInteger(128))).toBe('02020080');
    expect(hex(smallInteger(256))).toBe('02020100');
    expect(hex(unsignedInteger(Buffer.from('000001ff', 'hex')))).toBe('020201ff');
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 20 }), (bytes) => {
        const { tag, contents } = readTlv(unsignedInteger(bytes));
        expect(tag).toBe(2);
        expect(contents[0] ?? 0).toBeLessThan(0x80); // never read as negative
        if (contents.length > 1) expect(contents[0] === 0 && (contents[1] ?? 0) < 0x80).toBe(false);
        expect(BigInt(`0x${contents.toString('hex')}`)).toBe(
          BigInt(`0x${Buffer.from(bytes).toString('hex')}`),
        );
      }),
    );
  });

  it('object identifiers, as X.509 spells them', () => {
    expect(hex(objectIdentifier('1.2.840.10045.4.3.2'))).toBe('06082a8648ce3d040302'); // ecdsa-with-SHA256
    expect(hex(objectIdentifier('2.5.29.17'))).toBe('0603551d11'); // subjectAltName
    expect(hex(objectIdentifier('1.3.6.1.5.5.7.3.1'))).toBe('06082b06010505070301'); // serverAuth
    expect(() => objectIdentifier('3.1')).toThrow(/not an object identifier/);
    expect(() => objectIdentifier('1.40')).toThrow(/not an object identifier/);
  });

  it('named bits drop trailing zeros and count the unused ones', () => {
    expect(hex(namedBits([5, 6]))).toBe('03020106'); // keyCertSign, cRLSign
    expect(hex(namedBits([0, 2]))).toBe('030205a0'); // digitalSignature, keyEncipherment
    expect(hex(namedBits([7]))).toBe('03020001');
    expect(hex(namedBits([8]))).toBe('0303070080');
  });

  it('times: UTCTime through 2049, GeneralizedTime from 2050, whole seconds in UTC', () => {
    expect(time(new Date('2026-11-28T07:55:06.789Z')).toString('latin1').slice(2)).toBe('261128075506Z');
    expect(time(new Date('2026-11-28T07:55:06Z'))[0]).toBe(0x17);
    expect(time(new Date('2049-12-31T23:59:59Z')).toString('latin1').slice(2)).toBe('491231235959Z');
    const g = time(new Date('2050-01-01T00:00:00Z'));
    expect(g[0]).toBe(0x18);
    expect(g.toString('latin1').slice(2)).toBe('20500101000000Z');
  });
});

describe('certificate names and addresses', () => {
  it('one RDN per attribute, in the order given', () => {
    const name = encodeName('CN=admin,O=system:masters');
    const { contents } = readTlv(name);
    const first = readTlv(contents);
    const second = readTlv(first.rest);
    expect([first.tag, second.tag, second.rest.length]).toEqual([0x31, 0x31, 0]);
    expect(first.contents.includes(Buffer.from('admin'))).toBe(true);
    expect(second.contents.includes(Buffer.from('system:masters'))).toBe(true);
  });

  it('refuses what it cannot encode, naming it', () => {
    expect(() => encodeName('C=DE')).toThrow(/certificate subject "C=DE": each part must be CN=, O= or OU=/);
    expect(() => encodeName('CN=a\\,b')).toThrow(/plain value/);
    expect(() => encodeName('admin')).toThrow(/each part/);
  });

  it('IP addresses as 4 or 16 bytes', () => {
    expect(hex(ipAddressBytes('127.0.0.1'))).toBe('7f000001');
    expect(hex(ipAddressBytes('::1'))).toBe('00000000000000000000000000000001');
    expect(hex(ipAddressBytes('fd00::a:1'))).toBe('fd0000000000000000000000000a0001');
    expect(hex(ipAddressBytes('2001:db8:0:0:1:0:0:1'))).toBe('20010db8000000000001000000000001');
    expect(hex(ipAddressBytes('::ffff:10.0.0.1'))).toBe('00000000000000000000ffff0a000001');
    expect(() => ipAddressBytes('localhost')).toThrow(/"localhost" is not an IP address/);
  });
});
