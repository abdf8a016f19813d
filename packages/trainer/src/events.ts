import type { Metrics, StopReason } from '@flint/core';

/** What observers (progress bars, UIs) can listen to on `trainer.events`. Emitters do not await listeners. */
export interface TrainerEvents {
  fitStart: [info: { maxEpochs: number; numTrainingBatches: number; startEpoch: number }];
  trainEpochStart: [info: { epoch: number; numBatches: number }];
  trainBatchEnd: [info: { epoch: number; batchIdx: number; numBatches: number; globalStep: number; metrics: Metrics }];
  trainEpochEnd: [info: { epoch: number; metrics: Metrics }];
  evalStart: [info: { stage: 'sanity_check' | 'validate' | 'test' | 'predict'; numBatches: number }];
  evalBatchEnd: [info: { stage: 'sanity_check' | 'validate' | 'test' | 'predict'; batchIdx: number; numBatches: number }];
  evalEnd: [info: { stage: 'sanity_check' | 'validate' | 'test' | 'predict'; metrics: Metrics }];
  fitEnd: [info: { stopReason: StopReason | undefined; epochs: number; globalStep: number; seconds: number }];
  /** A line for the user (backend choice, model summary, warnings). */
  message: [text: string];
}
