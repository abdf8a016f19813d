import type * as tf from '@tensorflow/tfjs';
import { describe, expectTypeOf, it } from 'vitest';
import { DataLoader, DataModule, TensorDataset, randomSplit, type TensorBatch } from '@flint/core';
import { randomClassificationDataset } from '../testing/data.js';

declare const x: tf.Tensor2D;
declare const y: tf.Tensor1D;

describe('batch types follow the source', () => {
  it('TensorDataset.from', () => {
    expectTypeOf(TensorDataset.from(x).getBatch({ start: 0, end: 1 })).toEqualTypeOf<tf.Tensor>();
    const [bx, by] = TensorDataset.from([x, y]).getBatch({ start: 0, end: 1 });
    expectTypeOf(bx).toEqualTypeOf<tf.Tensor>();
    expectTypeOf(by).toEqualTypeOf<tf.Tensor>();
    expectTypeOf(TensorDataset.from({ x, y }).getBatch({ start: 0, end: 1 })).toEqualTypeOf<{ x: tf.Tensor; y: tf.Tensor }>();
    expectTypeOf(TensorDataset.from([{ a: [1, 2], b: 3 }]).getBatch({ start: 0, end: 1 })).toEqualTypeOf<{ a: tf.Tensor; b: tf.Tensor }>();
  });

  it('DataLoader infers the batch of a TensorDataset or tf.data.Dataset', () => {
    const ds = TensorDataset.from({ x, y });
    expectTypeOf(new DataLoader(ds)).toEqualTypeOf<DataLoader<{ x: tf.Tensor; y: tf.Tensor }>>();
    expectTypeOf(new DataLoader(randomClassificationDataset())).toEqualTypeOf<DataLoader<[tf.Tensor2D, tf.Tensor1D]>>();
    expectTypeOf(new DataLoader(x)).toEqualTypeOf<DataLoader<TensorBatch>>();
    expectTypeOf(new DataLoader(null as unknown as tf.data.Dataset<{ xs: tf.Tensor }>)).toEqualTypeOf<DataLoader<{ xs: tf.Tensor }>>();
    expectTypeOf(randomSplit(ds, [0.5, 0.5])[0]).toEqualTypeOf<TensorDataset<{ x: tf.Tensor; y: tf.Tensor }>>();
  });

  it('DataModule hooks are optional and typed by the batch', () => {
    class Dm extends DataModule<[tf.Tensor, tf.Tensor]> {
      override trainDataloader(): DataLoader<[tf.Tensor, tf.Tensor]> {
        return new DataLoader(TensorDataset.from([x, y]) as unknown as TensorDataset<[tf.Tensor, tf.Tensor]>);
      }
    }
    expectTypeOf(new Dm().valDataloader).toEqualTypeOf<(() => DataLoader<[tf.Tensor, tf.Tensor]>) | undefined>();
  });
});

describe('randomSplit', () => {
  it('a tuple of lengths gives a tuple of splits (no undefined under noUncheckedIndexedAccess)', () => {
    const ds = TensorDataset.from([x, y]);
    const [train, val] = randomSplit(ds, [0.8, 0.2]);
    expectTypeOf(train).toEqualTypeOf<typeof ds>();
    expectTypeOf(val).toEqualTypeOf<typeof ds>();
    const lengths: number[] = [1, 2, 3];
    expectTypeOf(randomSplit(ds, lengths)).toEqualTypeOf<Array<typeof ds>>();
  });
});
