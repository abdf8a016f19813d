// Every test file starts on the backend the suite runs on, set up exactly as a Trainer sets it up:
// FLINT_BACKEND (wasm by default, the embedded default backend, with Flint's wasm improvements;
// 'tensorflow' for the native run; 'cpu' for the pure-JS one). Trainers created in the tests honour
// FLINT_BACKEND too (it stands in for their `backend` option).
import { BACKEND_NAMES, type BackendName } from './packages/backends/src/index.js';
import { selectBackend } from './packages/trainer/src/accelerator.js';

process.env.FLINT_BACKEND ??= 'wasm';
const wanted = process.env.FLINT_BACKEND;
if (!(BACKEND_NAMES as readonly string[]).includes(wanted)) {
  throw new Error(`test setup: FLINT_BACKEND must be one of ${BACKEND_NAMES.join(', ')} (received '${wanted}')`);
}
await selectBackend({ accelerator: 'auto', backend: wanted as BackendName });
