/**
 * The few DER primitives the issuance hot path needs: a strict reader (definite, minimal
 * lengths only, so a BER-encoded CSR or signature is refused rather than guessed at) and
 * writers that concatenate precomputed parts. Strictness matters because every byte we
 * read from a client is either signed over (CSR) or copied into a certificate we sign (SPKI).
 */

export interface Tlv {
  tag: number;
  /** Offset of the tag byte in the source buffer. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset one past the last content byte. */
  end: number;
}

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

/** The byte at `index`, or a DerError when the input ends before it. */
function byteAt(buffer: Uint8Array, index: number): number {
  const byte = buffer[index];
  if (byte === undefined) throw new DerError('truncated');
  return byte;
}

/** Reads one TLV at `offset`; multi-byte tags are not used by anything we parse. */
export function readTlv(buffer: Uint8Array, offset: number, limit = buffer.length): Tlv {
  if (offset + 2 > limit) throw new DerError('truncated');
  const tag = byteAt(buffer, offset);
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not supported');
  let length = byteAt(buffer, offset + 1);
  let contentStart = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0) throw new DerError('indefinite length');
    if (count > 4) throw new DerError('length too large');
    if (contentStart + count > limit) throw new DerError('truncated');
    if (buffer[contentStart] === 0) throw new DerError('non-minimal length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + byteAt(buffer, contentStart + i);
    if (length < 0x80) throw new DerError('non-minimal length');
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > limit) throw new DerError('truncated');
  return { tag, start: offset, contentStart, end };
}

/** Reads a TLV and checks its tag. */
export function expectTlv(
  buffer: Uint8Array,
  offset: number,
  tag: number,
  limit = buffer.length,
): Tlv {
  const tlv = readTlv(buffer, offset, limit);
  if (tlv.tag !== tag)
    throw new DerError(`expected tag 0x${tag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  return tlv;
}

/** The children of a constructed TLV, which must exactly fill it. */
export function children(buffer: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let offset = parent.contentStart;
  while (offset < parent.end) {
    const child = readTlv(buffer, offset, parent.end);
    out.push(child);
    offset = child.end;
  }
  return out;
}

/** Content of a DER INTEGER that must be positive and minimally encoded; leading 0x00 removed. */
export function positiveIntegerContent(buffer: Uint8Array, tlv: Tlv): Uint8Array {
  if (tlv.tag !== 0x02) throw new DerError('expected INTEGER');
  const content = buffer.subarray(tlv.contentStart, tlv.end);
  const first = content[0];
  if (first === undefined) throw new DerError('empty INTEGER');
  if (first & 0x80) throw new DerError('negative INTEGER');
  const second = content[1];
  if (first === 0 && second !== undefined && !(second & 0x80))
    throw new DerError('non-minimal INTEGER');
  const magnitude = first === 0 ? content.subarray(1) : content;
  if (magnitude.length === 0) throw new DerError('zero INTEGER');
  return magnitude;
}

/** The size of a TLV with `contentLength` content bytes (minimal DER length). */
export const tlvLength = (contentLength: number): number =>
  1 + encodedLengthSize(contentLength) + contentLength;

const encodedLengthSize = (length: number): number =>
  length < 0x80 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : 4;

/** Writes a tag and the minimal DER length of `contentLength` at `at`; returns where the content starts. */
function writeHeader(out: Uint8Array, at: number, tag: number, contentLength: number): number {
  out[at++] = tag;
  const extra = encodedLengthSize(contentLength) - 1;
  if (extra === 0) {
    out[at++] = contentLength;
    return at;
  }
  out[at++] = 0x80 | extra;
  for (let shift = (extra - 1) * 8; shift >= 0; shift -= 8)
    out[at++] = (contentLength >> shift) & 0xff;
  return at;
}

/**
 * Writes DER front to back into one buffer whose size the caller computed (with `tlvLength`):
 * a leaf is one allocation instead of one per nested `tlv`. `done` checks the size was exact.
 */
export class DerWriter {
  private readonly out: Uint8Array;
  private at = 0;

  constructor(size: number) {
    this.out = new Uint8Array(size);
  }

  /** A tag and the minimal length of `contentLength` bytes that the next writes fill. */
  header(tag: number, contentLength: number): this {
    this.at = writeHeader(this.out, this.at, tag, contentLength);
    return this;
  }

  bytes(...parts: Uint8Array[]): this {
    for (const part of parts) {
      this.out.set(part, this.at);
      this.at += part.length;
    }
    return this;
  }

  /** One byte per character, for IA5String content: anything beyond ASCII is refused, never truncated. */
  ascii(text: string): this {
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code > 0x7f) throw new Error('an IA5String holds ASCII only');
      this.out[this.at++] = code;
    }
    return this;
  }

  done(): Uint8Array {
    if (this.at !== this.out.length)
      throw new Error(`DER size mismatch: wrote ${this.at} of ${this.out.length} bytes`);
    return this.out;
  }
}

/** A TLV around already-encoded content parts. */
export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(tlvLength(length));
  let offset = writeHeader(out, 0, tag, length);
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export const sequence = (...parts: Uint8Array[]): Uint8Array => tlv(0x30, ...parts);

/** A positive INTEGER from unsigned big-endian magnitude bytes. */
export function unsignedInteger(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  const top = trimmed[0];
  if (top === undefined) throw new DerError('empty INTEGER');
  return top & 0x80 ? tlv(0x02, Uint8Array.of(0), trimmed) : tlv(0x02, trimmed);
}

/** OBJECT IDENTIFIER from dotted form; used once per process to build templates. */
export function oid(dotted: string): Uint8Array {
  const [first, second, ...rest] = dotted.split('.').map(Number);
  if (
    first === undefined ||
    second === undefined ||
    ![first, second, ...rest].every(Number.isSafeInteger)
  )
    throw new Error(`invalid OID ${dotted}`);
  const bytes: number[] = [first * 40 + second];
  for (const arc of rest) {
    const chunk: number[] = [arc & 0x7f];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128))
      chunk.unshift((rest & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Uint8Array.from(bytes));
}

const pad2 = (value: number): string => String(value).padStart(2, '0');

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
export function time(unixSeconds: number): Uint8Array {
  const date = new Date(unixSeconds * 1000);
  const year = date.getUTCFullYear();
  const rest = `${pad2(date.getUTCMonth() + 1)}${pad2(date.getUTCDate())}${pad2(date.getUTCHours())}${pad2(date.getUTCMinutes())}${pad2(date.getUTCSeconds())}Z`;
  if (year >= 1950 && year < 2050)
    return tlv(0x17, Buffer.from(`${pad2(year % 100)}${rest}`, 'latin1'));
  return tlv(0x18, Buffer.from(`${String(year).padStart(4, '0')}${rest}`, 'latin1'));
}

export function toPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const base64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < base64.length; i += 64) lines.push(base64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Every PEM block with `label` in `text`, as DER. */
export function pemBlocks(text: string, label = 'CERTIFICATE'): Uint8Array[] {
  const pattern = new RegExp(
    `-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+?)-----END ${label}-----`,
    'g',
  );
  return [...text.matchAll(pattern)].map(
    ([, body = '']) => new Uint8Array(Buffer.from(body.replace(/\s+/g, ''), 'base64')),
  );
}
