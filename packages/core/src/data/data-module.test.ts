import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { DataLoader, DataModule, DataLoader as Loader, TensorDataset, isDataModule, type Stage } from '@flint/core';

class RangeData extends DataModule<Record<string, tf.Tensor>> {
  calls: string[] = [];
  private train: TensorDataset<Record<string, tf.Tensor>> | undefined;
  vocabulary: string[] = [];

  override prepareData(): void {
    this.calls.push('prepareData');
  }

  override setup(stage: Stage): void {
    this.calls.push(`setup:${stage}`);
    this.train = TensorDataset.from({ v: { data: [0, 1, 2, 3, 4], shape: [5] } });
  }

  override trainDataloader(): DataLoader<Record<string, tf.Tensor>> {
    return new DataLoader(this.train!, { batchSize: 2 });
  }

  override teardown(stage: Stage): void {
    this.calls.push(`teardown:${stage}`);
    this.train?.dispose();
  }

  override stateDict(): Record<string, unknown> {
    return { vocabulary: this.vocabulary };
  }

  override loadStateDict(state: Readonly<Record<string, unknown>>): void {
    this.vocabulary = state.vocabulary as string[];
  }
}

class Empty extends DataModule {}

describe('DataModule', () => {
  it('runs the hooks a subclass defines and hands out its loaders', async () => {
    const before = tf.memory().numTensors;
    const dm = new RangeData();
    await dm.prepareData();
    await dm.setup('fit');
    const loader = dm.trainDataloader();
    expect(loader).toBeInstanceOf(Loader);
    let batches = 0;
    for await (const batch of loader) {
      tf.dispose(batch);
      batches++;
    }
    expect(batches).toBe(3);
    await dm.teardown('fit');
    expect(dm.calls).toEqual(['prepareData', 'setup:fit', 'teardown:fit']);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('leaves undefined the hooks a subclass does not define; state defaults to nothing', () => {
    const dm = new Empty();
    expect(dm.setup).toBeUndefined();
    expect(dm.valDataloader).toBeUndefined();
    expect(dm.predictDataloader).toBeUndefined();
    expect(dm.stateDict()).toEqual({});
    expect(() => dm.loadStateDict({})).not.toThrow();
  });

  it('round-trips its state', () => {
    const dm = new RangeData();
    dm.vocabulary = ['a', 'b'];
    const other = new RangeData();
    other.loadStateDict(JSON.parse(JSON.stringify(dm.stateDict())) as Record<string, unknown>);
    expect(other.vocabulary).toEqual(['a', 'b']);
  });
});

describe('isDataModule', () => {
  it('is true for DataModule subclasses only', () => {
    expect(isDataModule(new Empty())).toBe(true);
    expect(isDataModule(new RangeData())).toBe(true);
    const t = tf.zeros([2]);
    const loader = new DataLoader(t);
    expect(isDataModule(loader)).toBe(false);
    expect(isDataModule({ trainDataloader: () => loader })).toBe(false);
    expect(isDataModule(null)).toBe(false);
    loader.dispose();
    t.dispose();
  });
});
