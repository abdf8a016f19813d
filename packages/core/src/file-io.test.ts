import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExportError } from './errors.js';
import { exportModule } from './export.js';
import { fileHandler } from './file-io.js';
import { Linear, Sequential } from './nn.js';

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flint-file-io-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('the file:// handler and model folders', () => {
  it('an export removes what a killed exporter left (a temporary folder beside it, temporary files inside it)', async () => {
    const net = new Sequential(new Linear(3, 2));
    const target = path.join(dir, 'model');
    // pid 2^22 + 1 is above Linux's pid_max default: no such process
    const deadFolder = path.join(dir, `.model.${2 ** 22 + 1}.deadbeef.tmp`);
    await fs.mkdir(deadFolder);
    await fs.writeFile(path.join(deadFolder, 'weights.bin'), 'half');
    await exportModule(net, target);
    expect(await fs.readdir(dir)).toEqual(['model']);
    const deadFile = path.join(target, `.weights.bin.${2 ** 22 + 1}.cafebabe.tmp`);
    await fs.writeFile(deadFile, 'half');
    await exportModule(net, target);
    expect((await fs.readdir(target)).sort()).toEqual(['model.json', 'weights.bin']);
    net.namedParameters().forEach((p) => p.variable.dispose());
  });

  it('loads a model folder given as a folder, and names a folder without model.json', async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 })] });
    await model.save(`file://${path.join(dir, 'saved')}`);
    const loaded = await tf.loadLayersModel(fileHandler(path.join(dir, 'saved')));
    expect(loaded.layers.map((l) => l.getClassName())).toEqual(['Dense']);
    const empty = path.join(dir, 'empty');
    await fs.mkdir(empty);
    await expect(tf.loadLayersModel(fileHandler(empty))).rejects.toThrow(
      new ExportError(`Cannot load a model from ${path.join(empty, 'model.json')}: the file does not exist (expected the model.json that exportModule or model.save('file://...') writes).`),
    );
    model.dispose();
    loaded.dispose();
  });
});
