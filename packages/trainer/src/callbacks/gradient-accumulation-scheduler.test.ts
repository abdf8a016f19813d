import { fileURLToPath } from 'node:url';
import { Callback, DataLoader, MisconfigurationError, seedEverything } from '@flint/core';
import { expectNoLeak, type OraclePython } from '@flint/core/testing';
import { GradientAccumulationScheduler } from '@flint/callbacks';
import { beforeAll, describe, expect, it } from 'vitest';
import { lightningPython, runPython } from '../testing/lightning-oracle.js';
import { FIN, FOUT, regressionData, regressionProblem, Regressor, weightsOf } from '../testing/regression.js';
import { Trainer, type TrainerOptions } from '../index.js';

const quiet: TrainerOptions = { logger: false, enableProgressBar: false, enableModelSummary: false, enableCheckpointing: false, backend: 'cpu' };
const oracle = fileURLToPath(new URL('./lightning-callbacks-oracle.py', import.meta.url));
class StepsPerEpoch extends Callback {
  readonly steps: number[] = [];
  override onTrainEpochEnd(trainer: import('@flint/core').TrainerContext): void {
    this.steps.push(trainer.globalStep);
  }
}

let venv: OraclePython = { skipReason: 'not looked for yet' };
beforeAll(async () => {
  venv = await lightningPython('GradientAccumulationScheduler oracle test');
}, 20 * 60_000);

describe('GradientAccumulationScheduler', () => {
  it('schedule lookup as Lightning: epoch 0 defaults to 1, the last scheduled epoch at or before wins', () => {
    const s = new GradientAccumulationScheduler({ 2: 4, 5: 2 });
    expect(s.scheduling).toEqual([
      [0, 1],
      [2, 4],
      [5, 2],
    ]);
    expect([0, 1, 2, 3, 4, 5, 9].map((e) => s.getAccumulateGradBatches(e))).toEqual([1, 1, 4, 4, 4, 2, 2]);
    expect(() => new GradientAccumulationScheduler({})).toThrow(/the schedule is empty/);
    expect(() => new GradientAccumulationScheduler({ 0: 0 })).toThrow('GradientAccumulationScheduler: the factor of epoch 0 must be a whole number >= 1 (received 0).');
    expect(() => new GradientAccumulationScheduler({ [-1]: 2 })).toThrow(/epoch '-1' must be a whole number >= 0/);
  });

  it('in a fit: optimizer steps per epoch follow the schedule (the last batch always steps), no leaks', async () => {
    const steps = new StepsPerEpoch();
    const trainer = new Trainer({ ...quiet, maxEpochs: 4, callbacks: [new GradientAccumulationScheduler({ 1: 2, 3: 4 }), steps] });
    const ds = regressionData(regressionProblem());
    const module = new Regressor();
    await expectNoLeak(() => trainer.fit(module, new DataLoader(ds, { batchSize: 4 })), 'fit');
    ds.dispose();
    // 6 batches per epoch (22 rows by 4): factor 1 -> 6 steps; 2 -> 3; 2 -> 3; 4 -> 2 (after batch 4 and the last).
    expect(steps.steps).toEqual([6, 9, 12, 14]);
    await expect(new Trainer({ ...quiet, maxEpochs: 1, accumulateGradBatches: 2, callbacks: [new GradientAccumulationScheduler({ 0: 2 })] }).fit(new Regressor(), new DataLoader(regressionData(regressionProblem()), { batchSize: 4 }))).rejects.toThrow(
      MisconfigurationError,
    );
  });

  it("gives Lightning's steps and weights on the same problem from the same initial weights", async (ctx) => {
    if (venv.python === undefined) {
      ctx.skip(venv.skipReason);
      return;
    }
    const p = regressionProblem();
    seedEverything(3);
    const module = new Regressor(0.05);
    const spec = { features: FIN, outputs: FOUT, ...p, weights: weightsOf(module), lr: 0.05, batchSize: 4, maxEpochs: 4, callback: { name: 'GradientAccumulationScheduler', scheduling: { 1: 2, 3: 4 } } };
    const lightning = await runPython<{ steps: number[]; weights: Record<string, number[]> }>(venv.python, oracle, spec);
    const steps = new StepsPerEpoch();
    const ds = regressionData(p);
    await new Trainer({ ...quiet, maxEpochs: 4, callbacks: [new GradientAccumulationScheduler({ 1: 2, 3: 4 }), steps] }).fit(module, new DataLoader(ds, { batchSize: 4 }));
    ds.dispose();
    expect(steps.steps).toEqual(lightning.steps);
    const ours = weightsOf(module);
    for (const [name, values] of Object.entries(lightning.weights)) values.forEach((v, i) => expect(ours[name]![i]!).toBeCloseTo(v, 5));
  }, 300_000);
});
