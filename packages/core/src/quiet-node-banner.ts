import * as tf from '@tensorflow/tfjs';

/**
 * tfjs's pure-JavaScript backend prints "Hi, looks like you are running TensorFlow.js in Node.js ...
 * install our node backend" on its first tensor in Node. Flint picks the backend itself and says its
 * choice in one line (the Trainer), so that banner is noise: turn it off for every instance of the cpu
 * backend, present and future, and nothing else (tfjs's other warnings stay).
 *
 * The banner hangs on the instance field `firstUse`, which the constructor assigns; an accessor on
 * the class's prototype that always reads false catches those assignments. If a tfjs version has no
 * such field, this does nothing.
 */
export function quietCpuBackendBanner(): void {
  let cpu: tf.KernelBackend | null;
  try {
    cpu = tf.findBackend('cpu');
  } catch {
    return;
  }
  if (cpu === null || !('firstUse' in cpu)) return;
  const proto = Object.getPrototypeOf(cpu) as object;
  if (Object.getOwnPropertyDescriptor(proto, 'firstUse') === undefined) {
    Object.defineProperty(proto, 'firstUse', { configurable: true, get: () => false, set: () => {} });
  }
  // The instance that exists already assigned its own field before the accessor was there.
  if (Object.getOwnPropertyDescriptor(cpu, 'firstUse') !== undefined) delete (cpu as { firstUse?: boolean }).firstUse;
}

quietCpuBackendBanner();
