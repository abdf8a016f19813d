/**
 * The differences between Flint and PyTorch Lightning 2.6 that parity.test.ts accepts, and nothing
 * else: (a) deliberate ones, each with its reason, shown in docs/coming-from-lightning.md (the
 * table there is generated from DOCUMENTED, and parity.test.ts checks it), and (b) known bugs still
 * to fix. The test is a ratchet: a difference not listed here fails it, and a listed id that no
 * longer differs fails it too, so that this list always tells the truth.
 */

/** A deliberate difference: one row of the table in docs/coming-from-lightning.md. */
export interface DocumentedDifference {
  /** What the row is about. */
  readonly topic: string;
  readonly lightning: string;
  readonly flint: string;
  readonly reason: string;
  /** The difference ids (`<scenario>/<observation>`) it explains. */
  readonly ids: readonly string[];
}

/** A known bug: Flint should behave as Lightning here. */
export interface KnownBug {
  readonly bug: string;
  readonly text: string;
  readonly ids: readonly string[];
}

export const DOCUMENTED: readonly DocumentedDifference[] = [
  {
    topic: 'hooks after an exception',
    lightning: '`on_exception`, then no `teardown` hook',
    flint: '`onException`, then `teardown` (callbacks, module, DataModule)',
    reason: 'what `setup` acquired is released also when a run fails',
    ids: ['hooks-exception/hooks'],
  },
  {
    topic: '`saveLast` with `saveTopK: 0`',
    lightning: '`last.ckpt` is written once, when training ends',
    flint: '`last.ckpt` is replaced at every epoch-end save point',
    reason: "Flint's default checkpointing is this callback: a crashed or killed run resumes from its last epoch",
    ids: ['ckpt-top0-last/saves'],
  },
  {
    topic: 'ModelCheckpoint without `monitor`',
    lightning: '`best_model_path` is the latest checkpoint',
    flint: '`bestModelPath` stays undefined',
    reason: "nothing is ranked, so there is no best; `ckptPath: 'best'` must not load the latest file",
    ids: ['ckpt-top1-no-monitor/ckptBest', 'ckpt-every-2-epochs/ckptBest', 'ckpt-every-2-train-steps/ckptBest', 'ckpt-same-name/ckptBest'],
  },
  {
    topic: 'a checkpoint name that is taken',
    lightning: 'the file is overwritten (`filename: "model"`, `save_top_k=-1`: one `model.ckpt`)',
    flint: '`-v1`, `-v2`, ... is added (`model.ckpt`, `model-v1.ckpt`, `model-v2.ckpt`)',
    reason: 'a kept checkpoint is never replaced silently',
    ids: ['ckpt-same-name/ckptFiles'],
  },
  {
    topic: '`CosineAnnealingLR` past `tMax`',
    lightning: "torch's rate climbs back up towards the initial rate",
    flint: 'the rate stays at `etaMin`',
    reason: 'a schedule that has ended should not restart by itself; use a longer `tMax` for a longer run',
    ids: ['lr-cosine-past-tmax/lrs'],
  },
  {
    topic: '`overfitBatches`',
    lightning: 'validates on the first N batches of the validation data',
    flint: 'validates on the same N training batches it trains on',
    reason: 'overfitting a few batches is a check that the model can learn them: the validation loss must fall with the training loss',
    ids: ['loop-overfit-batches/callbackMetrics'],
  },
];

export const KNOWN_BUGS: readonly KnownBug[] = [
  {
    bug: 'issue13-1',
    text: "ModelCheckpoint monitoring 'val_loss' with checkValEveryNEpoch: 2 throws at the end of epoch 0; Lightning saves at epochs 1, 3, 5",
    ids: ['ckpt-check-val-every-2/error', 'ckpt-check-val-every-2/saves', 'ckpt-check-val-every-2/ckptFiles', 'ckpt-check-val-every-2/ckptBest'],
  },
  {
    bug: 'issue13-2',
    text: "ReduceLROnPlateau with interval 'step' on a step-logged metric throws at step 1; with strict: false every reduction lands one step late",
    ids: ['lr-plateau-step/error', 'lr-plateau-step/lrs', 'lr-plateau-step-not-strict/lrs'],
  },
  {
    bug: 'issue13-3',
    text: 'when maxSteps stops training mid-epoch Flint runs one more validation (also with accumulation)',
    ids: ['loop-max-steps/validations', 'loop-max-steps-accumulate/validations'],
  },
  {
    bug: 'issue13-4',
    text: "validation values logged with onStep: true never reach the loggers (Lightning logs name_step per validation batch, at the validation batch's own step)",
    ids: ['log-val-on-step/logSteps', 'log-val-on-step/logMetrics', 'log-validate-on-step/logSteps', 'log-validate-on-step/logMetrics'],
  },
  {
    bug: 'issue13-5',
    text: "logger steps are one higher than Lightning's, and Flint also logs an epoch's last batch whatever logEveryNSteps says",
    ids: ['log-every-n-steps/logSteps', 'log-reductions/logSteps'],
  },
  {
    bug: 'issue13-6',
    text: 'epoch-end logger calls that share a step with an earlier logger call lack the epoch key',
    ids: ['log-every-n-steps/logMetrics'],
  },
  {
    bug: 'issue13-8',
    text: "EarlyStopping's wait grows when divergenceThreshold fires (Lightning, and Flint's docs, leave it)",
    ids: ['es-divergence-threshold/earlyStopping'],
  },
  {
    bug: 'issue13-9',
    text: 'trainer.validate() after fit leaves the training metrics in callbackMetrics, and returns name beside name_epoch for an onStep+onEpoch value',
    ids: ['log-validate-after-fit/callbackMetrics', 'log-validate-on-step/results'],
  },
  {
    bug: 'issue13-10',
    text: "interval 'step' with frequency > 1 counts global steps; Lightning counts the batch index within the epoch",
    ids: ['lr-exp-step-freq2/lrs'],
  },
  {
    bug: 'issue13-checkpoint-last',
    text: "Lightning runs Checkpoint callbacks after every other callback at every hook; Flint runs ModelCheckpoint's onTrainBatchEnd (everyNTrainSteps saves) in list order, before the callbacks listed after it",
    ids: ['hooks-checkpoint-steps-runs-last/hooks'],
  },
  {
    bug: 'parity-11',
    text: 'with valCheckInterval (whole number or fraction) Flint also validates at the end of an epoch whose length is not a multiple of it; Lightning does not',
    ids: ['loop-val-check-int/validations', 'loop-val-check-fraction/validations'],
  },
  {
    bug: 'parity-12',
    text: 'name_step of a validation value logged with onStep and onEpoch stays in callbackMetrics after the validation epoch; Lightning keeps name and name_epoch only',
    ids: ['log-val-on-step/callbackMetrics', 'log-validate-on-step/callbackMetrics'],
  },
];

export const DOCS_TABLE_START = '<!-- generated from packages/trainer/src/parity/known-differences.ts: do not edit -->';
export const DOCS_TABLE_END = '<!-- end of generated table -->';

/** The table of deliberate differences in docs/coming-from-lightning.md. */
export function renderDocsTable(documented: readonly DocumentedDifference[]): string {
  const cell = (s: string): string => s.replace(/\|/g, '\\|');
  return [
    '| topic | Lightning 2.6 | Flint | why |',
    '| --- | --- | --- | --- |',
    ...documented.map((d) => `| ${cell(d.topic)} | ${cell(d.lightning)} | ${cell(d.flint)} | ${cell(d.reason)} |`),
  ].join('\n');
}
