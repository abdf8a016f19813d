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
