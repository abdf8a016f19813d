// The schedulers against PyTorch's own (torch.optim.lr_scheduler, from the venv of
// scripts/lightning-venv.sh; FLINT_LIGHTNING_VENV points it elsewhere): every case runs both for 30
// steps and compares the learning rate, and the momentum where one is cycled, after construction and
// after every step, to 1e-9 (OneCycleLR up to its last step: after it, Flint holds the final rate where
// torch extrapolates). Skips with the printed reason when the venv cannot be made.
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { adam, getLearningRate, getMomentum } from '@flint/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ChainedScheduler, ConstantLR, CosineAnnealingLR, CyclicLR, ExponentialLR, LambdaLR, LinearLR, MultiStepLR, OneCycleLR, ReduceLROnPlateau, SequentialLR, StepLR } from './index.js';
import { buildScheduler, type SchedulerData } from './test-utils/scheduler-specs.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const oracle = fileURLToPath(new URL('./test-utils/torch_schedulers.py', import.meta.url));

type Opt = 'sgd' | 'momentum' | 'adam' | 'tfadam';
interface Case {
  name: string;
  optimizer: Opt;
  lr: number;
  steps: number;
  scheduler: SchedulerData;
  /** What torch runs when it differs from `scheduler` (Flint's warm-up option of CosineAnnealingLR). */
  torch?: SchedulerData;
}

const s = (type: SchedulerData['type'], options: SchedulerData['options'] = {}): SchedulerData => ({ type, options });
const c = (name: string, scheduler: SchedulerData, optimizer: Opt = 'sgd', extra: Partial<Case> = {}): Case => ({ name, optimizer, lr: 0.1, steps: 30, scheduler, ...extra });

const CASES: Case[] = [
  c('StepLR 3 x0.5', s('StepLR', { stepSize: 3, gamma: 0.5 })),
  c('StepLR 1 default gamma', s('StepLR', { stepSize: 1 }), 'sgd', { lr: 2 }),
  c('MultiStepLR repeated milestone', s('MultiStepLR', { milestones: [9, 2, 5, 5], gamma: 0.5 })),
  c('MultiStepLR default gamma', s('MultiStepLR', { milestones: [10, 20] })),
  c('ConstantLR defaults', s('ConstantLR')),
  c('ConstantLR 0.5 for 3', s('ConstantLR', { factor: 0.5, totalIters: 3 }), 'adam'),
  c('LinearLR defaults', s('LinearLR')),
  c('LinearLR 0.25 -> 0.5 over 10', s('LinearLR', { startFactor: 0.25, endFactor: 0.5, totalIters: 10 })),
  c('LinearLR 1 -> 0 over 30', s('LinearLR', { startFactor: 1, endFactor: 0, totalIters: 30 })),
  c('ExponentialLR 0.9', s('ExponentialLR', { gamma: 0.9 })),
  c('PolynomialLR defaults', s('PolynomialLR')),
  c('PolynomialLR 20 ^2', s('PolynomialLR', { totalIters: 20, power: 2 })),
  c('PolynomialLR 10 ^0.5', s('PolynomialLR', { totalIters: 10, power: 0.5 })),
  c('LambdaLR inverse', s('LambdaLR', { lrLambda: 'inverse' })),
  c('LambdaLR warm-up', s('LambdaLR', { lrLambda: 'warmup3' }), 'adam'),
  c('MultiplicativeLR 0.95', s('MultiplicativeLR', { lrLambda: 'decay95' })),
  c('MultiplicativeLR wobble', s('MultiplicativeLR', { lrLambda: 'wobble' })),
  c('CosineAnnealingLR 30', s('CosineAnnealingLR', { tMax: 30, etaMin: 0.001 })),
  c('CosineAnnealingLR 40', s('CosineAnnealingLR', { tMax: 40 })),
  c('CosineAnnealingLR warm-up = SequentialLR(LinearLR, CosineAnnealingLR)', s('CosineAnnealingLR', { tMax: 25, warmup: 5 }), 'sgd', {
    torch: s('SequentialLR', { schedulers: [s('LinearLR', { totalIters: 5 }), s('CosineAnnealingLR', { tMax: 25 })], milestones: [5] }),
  }),
  c('CosineAnnealingLR warm-up 0.1', s('CosineAnnealingLR', { tMax: 20, warmup: 10, warmupStartFactor: 0.1, etaMin: 0.01 }), 'sgd', {
    torch: s('SequentialLR', {
      schedulers: [s('LinearLR', { startFactor: 0.1, totalIters: 10 }), s('CosineAnnealingLR', { tMax: 20, etaMin: 0.01 })],
      milestones: [10],
    }),
  }),
  c('CosineAnnealingWarmRestarts 5', s('CosineAnnealingWarmRestarts', { t0: 5 })),
  c('CosineAnnealingWarmRestarts 3 x2', s('CosineAnnealingWarmRestarts', { t0: 3, tMult: 2, etaMin: 0.01 })),
  c('CyclicLR triangular, momentum', s('CyclicLR', { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 4 }), 'momentum'),
  c('CyclicLR triangular2, Adam beta1', s('CyclicLR', { baseLr: 0.001, maxLr: 0.01, stepSizeUp: 3, stepSizeDown: 5, mode: 'triangular2' }), 'adam'),
  c('CyclicLR triangular2, tf.train.adam beta1', s('CyclicLR', { baseLr: 0.001, maxLr: 0.01, stepSizeUp: 3, stepSizeDown: 5, mode: 'triangular2' }), 'tfadam'),
  c('CyclicLR exp_range, no momentum', s('CyclicLR', { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 5, mode: 'exp_range', gamma: 0.95, cycleMomentum: false })),
  c('CyclicLR scaleFn per iteration', s('CyclicLR', { baseLr: 0.01, maxLr: 0.1, stepSizeUp: 2, scaleFn: 'half', scaleMode: 'iterations', baseMomentum: 0.7, maxMomentum: 0.95 }), 'momentum'),
  c('OneCycleLR defaults, momentum', s('OneCycleLR', { maxLr: 0.1, totalSteps: 30 }), 'momentum', { steps: 29 }),
  c('OneCycleLR three phases linear, Adam beta1', s('OneCycleLR', { maxLr: 0.01, totalSteps: 30, threePhase: true, annealStrategy: 'linear' }), 'adam', { steps: 29 }),
  c('OneCycleLR no momentum', s('OneCycleLR', { maxLr: 1, totalSteps: 30, pctStart: 0.25, divFactor: 10, finalDivFactor: 100, cycleMomentum: false }), 'sgd', { steps: 29 }),
  c('OneCycleLR custom momentum range', s('OneCycleLR', { maxLr: 0.5, totalSteps: 40, baseMomentum: 0.5, maxMomentum: 0.99 }), 'momentum'),
  c('SequentialLR LinearLR then ExponentialLR', s('SequentialLR', { schedulers: [s('LinearLR', { startFactor: 0.1, totalIters: 4 }), s('ExponentialLR', { gamma: 0.9 })], milestones: [4] })),
  c(
    'SequentialLR of three',
    s('SequentialLR', {
      schedulers: [s('ConstantLR', { factor: 0.5, totalIters: 2 }), s('StepLR', { stepSize: 3, gamma: 0.5 }), s('MultiplicativeLR', { lrLambda: 'decay95' })],
      milestones: [5, 12],
    }),
  ),
  c('SequentialLR LinearLR then warm restarts', s('SequentialLR', { schedulers: [s('LinearLR'), s('CosineAnnealingWarmRestarts', { t0: 4 })], milestones: [3] })),
  c('ChainedScheduler ConstantLR x ExponentialLR', s('ChainedScheduler', { schedulers: [s('ConstantLR', { factor: 0.1, totalIters: 3 }), s('ExponentialLR', { gamma: 0.9 })] })),
  c('ChainedScheduler LinearLR x CosineAnnealingLR', s('ChainedScheduler', { schedulers: [s('LinearLR'), s('CosineAnnealingLR', { tMax: 30 })] })),
  c(
    'ChainedScheduler of three',
    s('ChainedScheduler', { schedulers: [s('StepLR', { stepSize: 2, gamma: 0.5 }), s('MultiStepLR', { milestones: [3, 6] }), s('PolynomialLR', { totalIters: 40 })] }),
    'adam',
  ),
];

function makeOptimizer(kind: Opt, lr: number): tf.Optimizer {
  if (kind === 'sgd') return tf.train.sgd(lr);
  if (kind === 'momentum') return tf.train.momentum(lr, 0.9);
  if (kind === 'adam') return adam({ learningRate: lr });
  return tf.train.adam(lr);
}

function flintTrace(k: Case): { lrs: number[]; momentums: Array<number | undefined> } {
  const optimizer = makeOptimizer(k.optimizer, k.lr);
  try {
    const scheduler = buildScheduler(optimizer, k.scheduler);
    const lrs = [getLearningRate(optimizer)];
    const momentums = [getMomentum(optimizer)];
    for (let i = 0; i < k.steps; i++) {
      scheduler.step();
      lrs.push(getLearningRate(optimizer));
      momentums.push(getMomentum(optimizer));
      expect(scheduler.getLastLr()).toEqual([lrs.at(-1)]);
    }
    return { lrs, momentums };
  } finally {
    optimizer.dispose();
  }
}

/** |a - b| within 1e-9 of b (relative; absolute near 0). */
const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(b), 1e-6);

let torch: { results?: Record<string, { lrs?: number[]; momentums?: Array<number | null>; error?: string }>; reason?: string } = {};

beforeAll(async () => {
  let python: string;
  try {
    const { stdout } = await promisify(execFile)('bash', [`${repo}scripts/lightning-venv.sh`], { cwd: repo, timeout: 20 * 60_000, maxBuffer: 1 << 20 });
    python = stdout.trim().split('\n').at(-1)!;
  } catch (error) {
    const e = error as { code?: number; stderr?: string; message: string };
    torch = { reason: `scheduler oracle skipped: scripts/lightning-venv.sh could not make a venv with torch (exit ${String(e.code)}): ${(e.stderr ?? e.message).trim()}` };
    return;
  }
  const payload = JSON.stringify({ cases: CASES.map((k) => ({ ...k, optimizer: k.optimizer === 'tfadam' ? 'adam' : k.optimizer, scheduler: k.torch ?? k.scheduler })) });
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(python, [oracle], { stdio: ['pipe', 'pipe', 'pipe'] });
    let text = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`torch_schedulers.py exited with ${String(code)}: ${err.slice(-2000)}`))));
    child.stdin.end(payload);
  });
  torch = { results: (JSON.parse(out) as { results: typeof torch.results }).results };
}, 20 * 60_000);

describe("the schedulers give torch's learning rates (and momentums) at every step", () => {
  for (const k of CASES) {
    it(k.name, (ctx) => {
      if (torch.results === undefined) {
        console.warn(torch.reason);
        ctx.skip(torch.reason);
        return;
      }
      const want = torch.results[k.name]!;
      expect(want.error).toBeUndefined();
      const got = flintTrace(k);
      expect(got.lrs).toHaveLength(want.lrs!.length);
      got.lrs.forEach((lr, t) => expect(close(lr, want.lrs![t]!), `lr at step ${t}: Flint ${lr}, torch ${want.lrs![t]}`).toBe(true));
      if (k.optimizer !== 'sgd') {
        got.momentums.forEach((m, t) => expect(close(m!, want.momentums![t]!), `momentum at step ${t}: Flint ${m}, torch ${want.momentums![t]}`).toBe(true));
      }
    });
  }
});

describe('options and composition', () => {
  it('options are checked with pinned messages', () => {
    const opt = tf.train.sgd(0.1);
    expect(() => new LinearLR(opt, { startFactor: 0 })).toThrow("LinearLR option 'startFactor': must be a factor in (0, 1] (received 0)");
    expect(() => new ConstantLR(opt, { factor: 1.5 })).toThrow("ConstantLR option 'factor': must be a factor in [0, 1] (received 1.5)");
    expect(() => new MultiStepLR(opt, { milestones: [1.5] })).toThrow("MultiStepLR option 'milestones.0': must be a whole number >= 0 (received 1.5)");
    expect(() => new LambdaLR(opt, { lrLambda: 0.5 as never })).toThrow("LambdaLR option 'lrLambda': must be a function (epoch: number) => number");
    expect(() => new CosineAnnealingLR(opt, { tMax: 10, warmupStartLr: 0 } as never)).toThrow(`CosineAnnealingLR option '(options)': Unrecognized key: "warmupStartLr"`);
    expect(() => new OneCycleLR(opt, { maxLr: 0.1, totalSteps: 10 })).toThrow(
      "OneCycleLR option 'cycleMomentum': the optimizer SGD has no momentum or beta1 to cycle (received true): use tf.train.momentum(lr, 0.9), adam() from @flint/core or tf.train.adam(lr), or set cycleMomentum: false.",
    );
    expect(() => new CyclicLR(opt, { baseLr: 0.01, maxLr: 0.1, maxMomentum: 1 })).toThrow("CyclicLR option 'maxMomentum': must be a momentum in [0, 1) (received 1)");
    const step = new StepLR(opt, { stepSize: 1 });
    expect(() => new SequentialLR(opt, { schedulers: [step, new ExponentialLR(opt, { gamma: 0.9 })], milestones: [] })).toThrow(
      "SequentialLR option 'milestones': must be 1 increasing whole number(s), one fewer than the schedulers (received []).",
    );
    expect(() => new SequentialLR(opt, { schedulers: [step, new ReduceLROnPlateau(opt)], milestones: [2] })).toThrow(
      "SequentialLR option 'schedulers': ReduceLROnPlateau (at index 1) cannot be part of it, because it steps with the monitored value; give it its own lrScheduler config with monitor.",
    );
    const other = tf.train.sgd(0.1);
    expect(() => new ChainedScheduler(opt, { schedulers: [step, new StepLR(other, { stepSize: 1 })] })).toThrow(
      "ChainedScheduler option 'schedulers': the scheduler at index 1 (StepLR) schedules another optimizer; all must schedule the optimizer given to ChainedScheduler.",
    );
    opt.dispose();
    other.dispose();
  });

  it('no schedule starts at learning rate 0 by default: warm-ups start at a third of the rate', () => {
    const opt = tf.train.sgd(0.3);
    new CosineAnnealingLR(opt, { tMax: 10, warmup: 3 });
    expect(getLearningRate(opt)).toBeCloseTo(0.1, 15);
    const opt2 = tf.train.sgd(0.3);
    new LinearLR(opt2);
    expect(getLearningRate(opt2)).toBeCloseTo(0.1, 15);
    opt.dispose();
    opt2.dispose();
  });

  it('SequentialLR and ChainedScheduler state round-trips onto a new optimizer (a resumed fit builds fresh ones)', () => {
    const build = (opt: tf.Optimizer) => {
      const warm = new LinearLR(opt, { totalIters: 3 });
      const seq = new SequentialLR(opt, { schedulers: [warm, new CosineAnnealingLR(opt, { tMax: 10 })], milestones: [3] });
      return new ChainedScheduler(opt, { schedulers: [seq, new ExponentialLR(opt, { gamma: 0.9 })] });
    };
    const a = tf.train.momentum(0.1, 0.9);
    const first = build(a);
    for (let i = 0; i < 5; i++) first.step();
    const b = tf.train.momentum(0.1, 0.9);
    const second = build(b);
    second.loadStateDict(JSON.parse(JSON.stringify(first.stateDict())) as Record<string, unknown>);
    expect(getLearningRate(b)).toBe(getLearningRate(a));
    for (let i = 0; i < 4; i++) {
      first.step();
      second.step();
      expect(getLearningRate(b)).toBeCloseTo(getLearningRate(a), 15);
    }
    a.dispose();
    b.dispose();
  });
});
