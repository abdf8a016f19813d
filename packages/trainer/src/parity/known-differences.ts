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
  {
    topic: 'logger calls of validation/test step values (`onStep`)',
    lightning: 'without the `epoch` key',
    flint: 'with the `epoch` key, as every other logger call',
    reason: "every logger call carries the epoch, so that a logger can put any metric on an epoch axis (TensorBoardLogger's `epochAxisMetrics`)",
    ids: ['log-val-on-step/logMetrics', 'log-validate-on-step/logMetrics'],
  },
  {
    topic: 'an `everyNTrainSteps` save on an epoch\'s last batch',
    lightning: 'written in that batch\'s `on_train_batch_end`',
    flint: 'written at the epoch end (after validation, the epoch metrics and the epoch schedulers)',
    reason: 'a checkpoint of a finished epoch resumes at the next epoch; written earlier, it would miss what the epoch end computes',
    ids: ['hooks-checkpoint-step-save-at-epoch-end/hooks'],
  },
  {
    topic: 'a monitored LR scheduler with `checkValEveryNEpoch: 2`',
    lightning: 'the plateau scheduler reads the metric every epoch: at epoch 0 it is an error (`strict`), and an epoch without validation steps on the last validation value again',
    flint: 'the rule of the monitoring callbacks: a metric not logged yet is noted and the step skipped; a stale value is not stepped on again',
    reason: 'EarlyStopping and a scheduler on the same metric count the same checks (one per validation run), and a run that validates every 2 epochs is not an error at epoch 0',
    ids: ['lr-plateau-check-val-every-2/error', 'lr-plateau-check-val-every-2/lrs', 'lr-plateau-check-val-every-2-not-strict/lrs'],
  },
];

export const KNOWN_BUGS: readonly KnownBug[] = [];

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
