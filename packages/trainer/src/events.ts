import type { Metrics, Phase, StopReason } from '@flint/core';

/** The phases that run batches without training: the sanity check, validation, test and predict. */
type EvalPhase = Exclude<Phase, 'train'>;

/** What observers (progress bars, UIs) can listen to on `trainer.events`. Emitters do not await listeners. */
export interface TrainerEvents {
  fitStart: [info: { maxEpochs: number; numTrainingBatches: number; startEpoch: number }];
  trainEpochStart: [info: { epoch: number; numBatches: number }];
  trainBatchEnd: [info: { epoch: number; batchIdx: number; numBatches: number; globalStep: number; metrics: Metrics }];
  trainEpochEnd: [info: { epoch: number; metrics: Metrics }];
  evalStart: [info: { stage: EvalPhase; numBatches: number }];
  evalBatchEnd: [info: { stage: EvalPhase; batchIdx: number; numBatches: number }];
  evalEnd: [info: { stage: EvalPhase; metrics: Metrics }];
  fitEnd: [info: { stopReason: StopReason | undefined; epochs: number; globalStep: number; seconds: number }];
  /** A line for the user (backend choice, model summary, warnings). */
  message: [text: string];
}
