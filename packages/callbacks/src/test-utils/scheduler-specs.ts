/**
 * Schedulers described as data, built the same way by Flint (here) and by PyTorch
 * (torch_schedulers.py): the oracle test of the schedulers (lr-schedulers.test.ts) and the
 * differential test against Lightning (packages/trainer/src/parity) share them. Functions
 * (`lrLambda`, `scaleFn`) are named entries of LAMBDAS, written once in each language.
 */
import type * as tf from '@tensorflow/tfjs';
import type { LRScheduler } from '@flint/core';
import {
  ChainedScheduler,
  ConstantLR,
  CosineAnnealingLR,
  CosineAnnealingWarmRestarts,
  CyclicLR,
  ExponentialLR,
  LambdaLR,
  LinearLR,
  MultiplicativeLR,
  MultiStepLR,
  OneCycleLR,
  PolynomialLR,
  ReduceLROnPlateau,
  SequentialLR,
  StepLR,
} from '../index.js';

export type SchedulerType =
  | 'StepLR'
  | 'MultiStepLR'
  | 'ConstantLR'
  | 'LinearLR'
  | 'ExponentialLR'
  | 'PolynomialLR'
  | 'LambdaLR'
  | 'MultiplicativeLR'
  | 'CosineAnnealingLR'
  | 'CosineAnnealingWarmRestarts'
  | 'CyclicLR'
  | 'OneCycleLR'
  | 'SequentialLR'
  | 'ChainedScheduler'
  | 'ReduceLROnPlateau';

export type SchedulerOption = number | string | boolean | number[] | Array<{ type: SchedulerType; options?: Record<string, SchedulerOption> }>;

/** A scheduler as data: `lrLambda` / `scaleFn` name an entry of LAMBDAS, `schedulers` nest. */
export interface SchedulerData {
  type: SchedulerType;
  options?: Record<string, SchedulerOption>;
}

/** The functions schedulers may take, by name (the same in torch_schedulers.py). */
export const LAMBDAS: Record<string, (x: number) => number> = {
  inverse: (e) => 1 / (1 + e),
  warmup3: (e) => Math.min(1, (e + 1) / 3),
  decay95: () => 0.95,
  wobble: (e) => (e % 3 === 0 ? 0.9 : 1.05),
  half: (x) => 0.5 ** x,
};

/** Builds the Flint scheduler `spec` describes on `optimizer`. */
export function buildScheduler(optimizer: tf.Optimizer, spec: SchedulerData): LRScheduler {
  const o: Record<string, unknown> = { ...spec.options };
  for (const key of ['lrLambda', 'scaleFn']) if (typeof o[key] === 'string') o[key] = LAMBDAS[o[key]];
  if (Array.isArray(o.schedulers)) o.schedulers = (o.schedulers as SchedulerData[]).map((s) => buildScheduler(optimizer, s));
  const options = o as never;
  switch (spec.type) {
    case 'StepLR':
      return new StepLR(optimizer, options);
    case 'MultiStepLR':
      return new MultiStepLR(optimizer, options);
    case 'ConstantLR':
      return new ConstantLR(optimizer, options);
    case 'LinearLR':
      return new LinearLR(optimizer, options);
    case 'ExponentialLR':
      return new ExponentialLR(optimizer, options);
    case 'PolynomialLR':
      return new PolynomialLR(optimizer, options);
    case 'LambdaLR':
      return new LambdaLR(optimizer, options);
    case 'MultiplicativeLR':
      return new MultiplicativeLR(optimizer, options);
    case 'CosineAnnealingLR':
      return new CosineAnnealingLR(optimizer, options);
    case 'CosineAnnealingWarmRestarts':
      return new CosineAnnealingWarmRestarts(optimizer, options);
    case 'CyclicLR':
      return new CyclicLR(optimizer, options);
    case 'OneCycleLR':
      return new OneCycleLR(optimizer, options);
    case 'SequentialLR':
      return new SequentialLR(optimizer, options);
    case 'ChainedScheduler':
      return new ChainedScheduler(optimizer, options);
    case 'ReduceLROnPlateau':
      return new ReduceLROnPlateau(optimizer, options);
  }
}
