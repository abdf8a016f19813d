import * as tf from '@tensorflow/tfjs';

/**
 * Runs `fn` and throws if it leaves tensors behind: `tf.memory().numTensors` must be back where it
 * was. Returns what `fn` returned.
 */
export async function expectNoLeak<T>(fn: () => T | Promise<T>, label = 'the code under test'): Promise<T> {
  const before = tf.memory().numTensors;
  const result = await fn();
  const after = tf.memory().numTensors;
  if (after !== before) {
    throw new Error(`${label} leaked ${after - before} tensor(s): tf.memory().numTensors went from ${before} to ${after}.`);
  }
  return result;
}
