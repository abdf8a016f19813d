import { crc32c } from '@aws-crypto/crc32c';

const MASK_DELTA = 0xa282ead8;

/** TensorFlow's masked CRC32C: rotate the Castagnoli CRC right by 15 bits, then add a constant (mod 2^32). */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return (((c >>> 15) | (c << 17)) + MASK_DELTA) >>> 0;
}

/**
 * Frames one serialized Event as a TFRecord: length (u64 LE), masked CRC of the length, the data,
 * masked CRC of the data.
 */
export function encodeRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/** The whole, intact records of a TFRecord file, in order (reading stops at a torn or damaged one). */
export function decodeRecords(buf: Uint8Array): Uint8Array[] {
  const records: Uint8Array[] = [];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  while (pos + 12 <= buf.length) {
    if (view.getUint32(pos + 8, true) !== maskedCrc32c(buf.subarray(pos, pos + 8))) break;
    const len = Number(view.getBigUint64(pos, true));
    if (pos + 12 + len + 4 > buf.length) break;
    const data = buf.subarray(pos + 12, pos + 12 + len);
    if (view.getUint32(pos + 12 + len, true) !== maskedCrc32c(data)) break;
    records.push(data);
    pos += 12 + len + 4;
  }
  return records;
}

/** What a resume needs to know of an Event: its step, whether it is a summary, its tags, and a SessionLog's message. */
export interface EventOutline {
  readonly step: number;
  readonly summary: boolean;
  readonly tags: string[];
  /** The `msg` of a SessionLog event (field 7), if it has one. */
  readonly sessionMsg?: string;
}

/** Reads the step (field 2), the summary (field 5) and its values' tags, and a session log's msg (field 7), of a serialized Event. */
export function outlineEvent(data: Uint8Array): EventOutline {
  let step = 0;
  let summary = false;
  let sessionMsg: string | undefined;
  const tags: string[] = [];
  const r = new ProtoCursor(data);
  while (!r.done) {
    const [field, wire] = r.key();
    if (field === 2 && wire === 0) step = r.varint();
    else if (field === 5 && wire === 2) {
      summary = true;
      const s = new ProtoCursor(r.bytes());
      while (!s.done) {
        const [f, w] = s.key();
        if (f !== 1 || w !== 2) {
          s.skip(w);
          continue;
        }
        const v = new ProtoCursor(s.bytes());
        while (!v.done) {
          const [vf, vw] = v.key();
          if (vf === 1 && vw === 2) tags.push(new TextDecoder().decode(v.bytes()));
          else v.skip(vw);
        }
      }
    } else if (field === 7 && wire === 2) {
      const s = new ProtoCursor(r.bytes());
      while (!s.done) {
        const [f, w] = s.key();
        if (f === 3 && w === 2) sessionMsg = new TextDecoder().decode(s.bytes());
        else s.skip(w);
      }
    } else r.skip(wire);
  }
  return sessionMsg === undefined ? { step, summary, tags } : { step, summary, tags, sessionMsg };
}

class ProtoCursor {
  private pos = 0;
  constructor(private readonly buf: Uint8Array) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): number {
    let result = 0;
    let mul = 1;
    for (;;) {
      const b = this.buf[this.pos++];
      if (b === undefined) throw new Error('truncated varint');
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
  }
  key(): [number, number] {
    const k = this.varint();
    return [Math.floor(k / 8), k % 8];
  }
  bytes(): Uint8Array {
    const len = this.varint();
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}
