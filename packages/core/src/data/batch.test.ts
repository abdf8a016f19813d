import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { DataError, describeBatch, inferBatchSize } from '@flint/core';

describe('inferBatchSize', () => {
  it('reads the first dimension of the first tensor found; 1 for a scalar', () => {
    const x = tf.zeros([64, 784]);
    const y = tf.zeros([64], 'int32');
    const s = tf.scalar(3);
    expect(inferBatchSize(x)).toBe(64);
    expect(inferBatchSize([x, y])).toBe(64);
    expect(inferBatchSize({ meta: 'a', inputs: { y } })).toBe(64);
    expect(inferBatchSize(s)).toBe(1);
    expect(() => inferBatchSize({ a: 1 })).toThrow(
      new DataError(
        'Cannot infer the batch size: the batch holds no tensor (received {a: number}). A batch is a tensor, an array of tensors or a record of tensors.',
      ),
    );
    tf.dispose([x, y, s]);
  });
});

describe('describeBatch', () => {
  it('shows dtype and shape of every tensor, in the batch structure', () => {
    const x = tf.zeros([64, 784]);
    const y = tf.zeros([64], 'int32');
    expect(describeBatch({ x, y })).toBe('{x: float32[64,784], y: int32[64]}');
    expect(describeBatch([x, y])).toBe('[float32[64,784], int32[64]]');
    expect(describeBatch(x)).toBe('float32[64,784]');
    expect(describeBatch([new Float32Array(3), 'id', null])).toBe('[Float32Array(3), "id", null]');
    tf.dispose([x, y]);
  });
});
