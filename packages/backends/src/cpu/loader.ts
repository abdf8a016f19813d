import { activate } from '../internal/optional.js';
import type { BackendLoader } from '../loader.js';

/** tfjs's pure-JavaScript backend, always there. */
export const cpuLoader: BackendLoader = {
  backend: 'cpu',
  accelerator: 'cpu',
  provider: '@tensorflow/tfjs (pure JavaScript)',
  install: 'install @tensorflow/tfjs',
  async load() {
    if (!(await activate('cpu'))) return { ok: false, reason: 'the cpu backend did not initialize' };
    return { ok: true, details: [] };
  },
};
