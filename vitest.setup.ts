// Every test file starts on the backend the suite runs on: FLINT_BACKEND (wasm by default, the
// embedded default backend; 'tensorflow' for the native run; 'cpu' for the pure-JS one).
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

// Trainers created in the tests honour FLINT_BACKEND too (it stands in for their `backend` option).
process.env.FLINT_BACKEND ??= 'wasm';
const wanted = process.env.FLINT_BACKEND;
if (wanted === 'tensorflow') {
  const nativeName = '@tensorflow/tfjs-node';
  await import(nativeName);
}
if (!(await tf.setBackend(wanted))) throw new Error(`test setup: backend '${wanted}' could not be initialized`);
await tf.ready();
