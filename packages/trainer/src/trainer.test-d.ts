import { describe, expectTypeOf, it } from 'vitest';
import { Trainer, type TrainerOptions } from './index.js';

describe('Trainer types', () => {
  it('options are checked by the type that users write', () => {
    expectTypeOf<{ maxEpochs: 3; accelerator: 'auto' }>().toExtend<TrainerOptions>();
    // @ts-expect-error an unknown accelerator
    new Trainer({ accelerator: 'tpu' });
    // @ts-expect-error an unknown backend
    new Trainer({ backend: 'webgl' });
    // @ts-expect-error gradientClipAlgorithm is 'norm' or 'value'
    new Trainer({ gradientClipAlgorithm: 'l2' });
  });

  it('results are plain numbers, never tensors', () => {
    const t = new Trainer();
    expectTypeOf(t.callbackMetrics).toEqualTypeOf<Readonly<Record<string, number>>>();
    expectTypeOf(t.history[0]!.metrics).toEqualTypeOf<Readonly<Record<string, number>>>();
    expectTypeOf(t.validate).returns.resolves.toEqualTypeOf<Readonly<Record<string, number>>>();
  });
});
