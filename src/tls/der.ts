/**
 * The few DER (X.690) encodings an X.509 certificate needs: tag, length, contents. Encoding only:
 * what reads certificates back is Node's X509Certificate (OpenSSL) and, in the tests, Go's
 * crypto/x509 inside kube-apiserver and `openssl verify`.
 */

/** A non-negative whole number's big-endian bytes, fewest first to last (none for 0). */
function bigEndian(n: number, what: string): number[] {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`DER ${what} ${n}`);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return bytes;
}

/** A definite length: short form below 128, else 0x80 + the count of big-endian length bytes. */
export function derLength(n: number): Buffer {
  const bytes = bigEndian(n, 'length');
  return n < 0x80 ? Buffer.of(n) : Buffer.of(0x80 | bytes.length, ...bytes);
}

export const tlv = (tag: number, ...contents: Uint8Array[]): Buffer => {
  const body = Buffer.concat(contents);
  return Buffer.concat([Buffer.of(tag), derLength(body.length), body]);
};

export const sequence = (...items: Uint8Array[]): Buffer => tlv(0x30, ...items);
export const set = (...items: Uint8Array[]): Buffer => tlv(0x31, ...items);
export const boolean = (value: boolean): Buffer => tlv(0x01, Buffer.of(value ? 0xff : 0));
export const octetString = (bytes: Uint8Array): Buffer => tlv(0x04, bytes);
export const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
/** `[n] EXPLICIT`: a constructed context tag around a whole encoding. */
export const explicit = (n: number, inner: Uint8Array): Buffer => tlv(0xa0 | n, inner);
/** `[n] IMPLICIT` over a primitive type: the context tag replaces the type's own. */
export const implicit = (n: number, contents: Uint8Array): Buffer => tlv(0x80 | n, contents);

/** A non-negative INTEGER from big-endian magnitude bytes: minimal, with a 0 byte where the top bit is set. */
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const bytes = magnitude.subarray(start);
  if (bytes.length === 0) return tlv(0x02, Buffer.of(0));
  return (bytes[0] ?? 0) & 0x80 ? tlv(0x02, Buffer.of(0), bytes) : tlv(0x02, bytes);
}

export const smallInteger = (n: number): Buffer =>
  unsignedInteger(Buffer.from(bigEndian(n, 'small integer')));

/** An OBJECT IDENTIFIER from its dotted form: the first two arcs as 40a+b, each arc base 128. */
export function objectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const [first, second, ...rest] = arcs;
  if (
    first === undefined ||
    second === undefined ||
    arcs.some((a) => !Number.isSafeInteger(a) || a < 0) ||
    first > 2 ||
    (first < 2 && second > 39)
  )
    throw new RangeError(`not an object identifier: ${dotted}`);
  const out: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const septets = [arc % 128];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) septets.unshift(0x80 | (v % 128));
    out.push(...septets);
  }
  return tlv(0x06, Buffer.from(out));
}

/** A BIT STRING of whole bytes (a signature, a key). */
export const bitString = (bytes: Uint8Array): Buffer => tlv(0x03, Buffer.of(0), bytes);

/**
 * A named-bit BIT STRING (KeyUsage) from bit numbers, bit 0 the first: DER drops trailing
 * zero bits and counts the unused ones in the first content byte.
 */
export function namedBits(bits: number[]): Buffer {
  if (bits.length === 0) return tlv(0x03, Buffer.of(0));
  const last = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(last / 8) + 1);
  for (const b of bits) bytes[b >> 3] = (bytes[b >> 3] ?? 0) | (0x80 >> (b & 7));
  return tlv(0x03, Buffer.of(7 - (last & 7)), bytes);
}

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, UTC. */
export function time(at: Date): Buffer {
  const iso = at.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '') + 'Z';
  const year = at.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new RangeError(`certificate time out of range: ${iso}`);
  return year < 2050
    ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii'))
    : tlv(0x18, Buffer.from(digits, 'ascii'));
}
