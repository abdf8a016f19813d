import { existsSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DataLoader, MisconfigurationError, randomSplit, seedEverything, TensorDataset, type Callback } from '@flint/core';
import { DropoutScheduler, EarlyStopping, ModelCheckpoint, OverfittingMonitor, type DropoutSchedule, type FitVerdict } from '@flint/callbacks';
import { TensorBoardLogger } from '@flint/loggers';
import { Trainer, type BackendName } from '@flint/trainer';
import { loadMnist, MnistClassifier, type MnistBatch } from '@flint/example-mnist';
import { WeightDecayClassifier } from './model.js';

export { WeightDecayClassifier } from './model.js';
export type { WeightDecayClassifierOptions } from './model.js';

export type NetKind = 'single' | 'multi';
export type SizeName = 'small' | 'medium' | 'large';
export type Regularization = 'none' | 'dropout' | 'weight_decay' | 'dropout+weight_decay';

/** One configuration: a net, a size, and how the large net is regularized. */
export interface SizeConfig {
  /** Also the TensorBoard version folder: `single-small`, `multi-large+dropout`, ... */
  readonly name: string;
  readonly net: NetKind;
  readonly size: SizeName;
  readonly regularization: Regularization;
}

/** The nine configurations, in table order: both nets at three sizes, then the large multi-layer net regularized three ways. */
export const CONFIGS: readonly SizeConfig[] = [
  ...(['single', 'multi'] as const).flatMap((net) =>
    (['small', 'medium', 'large'] as const).map((size) => ({ name: `${net}-${size}`, net, size, regularization: 'none' as const })),
  ),
  { name: 'multi-large+dropout', net: 'multi', size: 'large', regularization: 'dropout' },
  { name: 'multi-large+weight_decay', net: 'multi', size: 'large', regularization: 'weight_decay' },
  { name: 'multi-large+dropout+weight_decay', net: 'multi', size: 'large', regularization: 'dropout+weight_decay' },
];

export interface MnistSizesOptions {
  /** Which configurations to train, by name (see `CONFIGS`). Default all nine. */
  configs?: string[];
  /** Hidden units per layer of each size. Default small 32, medium 128, large 512. */
  sizes?: Partial<Record<SizeName, number>>;
  /** Hidden layers of the multi-layer net (each of the size's width). Default 2. */
  multiLayers?: number;
  /** Training images (the first `trainSize + valSize` of MNIST's training file, split at random). Default 2,000. */
  trainSize?: number;
  /** Validation images. Default 5,000. */
  valSize?: number;
  /** Test images (the first N of MNIST's test file). Default all 10,000. */
  testSize?: number;
  /** Most epochs per run; EarlyStopping usually ends runs sooner. Default 40. */
  maxEpochs?: number;
  /** EarlyStopping's patience on val_loss (validation runs without improvement). Default 6. */
  patience?: number;
  /** OverfittingMonitor's patience: epochs after the best before overfitting is declared. Default 5. */
  monitorPatience?: number;
  batchSize?: number;
  /** Adam's learning rate. Default 1e-3. */
  learningRate?: number;
  /** The dropout schedule of the `+dropout` runs. Default linear from 0.2 to 0.5 over the first 10 epochs. */
  dropoutSchedule?: DropoutSchedule;
  /** The L2 coefficient of the `+weight_decay` runs. Default 5e-3. */
  weightDecay?: number;
  seed?: number;
  backend?: BackendName;
  /** TensorBoard save dir: runs go to `<logDir>/mnist-sizes/<config name>`. Default `flint_logs`. */
  logDir?: string;
  enableProgressBar?: boolean;
  /** Write lines here (default console.log). */
  print?: (line: string) => void;
}

/** One row of the table. */
export interface SizeRow {
  readonly config: string;
  readonly net: NetKind;
  readonly size: SizeName;
  readonly regularization: Regularization;
  readonly hidden: readonly number[];
  readonly params: number;
  /** Epochs trained (EarlyStopping may stop before maxEpochs). */
  readonly epochs: number;
  /** The rule that ended the fit: `early_stopping` or `max_epochs`. */
  readonly stoppedBy: string;
  /** Epoch (0-based) of the lowest val_loss: the weights EarlyStopping restored and the `best` checkpoint. */
  readonly bestEpoch: number;
  /** The highest val_acc of any epoch. */
  readonly bestValAcc: number;
  /** val_acc at the best epoch (by val_loss). */
  readonly valAccAtBest: number;
  /** Test accuracy of the restored best weights. */
  readonly testAcc: number;
  readonly bestValLoss: number;
  /** train_loss (plain cross-entropy) and val_loss at the last epoch, and their gap. */
  readonly lastTrainLoss: number;
  readonly lastValLoss: number;
  readonly lastGap: number;
  readonly verdict: FitVerdict;
  readonly seconds: number;
  readonly runDir: string;
  readonly bestCheckpoint: string | undefined;
  readonly lastCheckpoint: string | undefined;
}

export interface MnistSizesResult {
  readonly rows: SizeRow[];
  /** The table as printed. */
  readonly table: string;
  readonly tensorboardCommand: string;
  readonly seconds: number;
}

const VERDICT_TEXT: Record<FitVerdict['kind'], string> = {
  overfitting: 'overfitting',
  underfitting: 'underfitting',
  good_fit: 'good fit',
  unknown: 'unknown',
};

function verdictCell(v: FitVerdict): string {
  return v.kind === 'overfitting' && v.onsetEpoch !== undefined ? `overfitting since epoch ${v.onsetEpoch}` : VERDICT_TEXT[v.kind];
}

/** The rows as a fixed-width text table. */
export function formatTable(rows: readonly SizeRow[]): string {
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const header = ['config', 'hidden', 'params', 'epochs', 'best epoch', 'best val acc', 'test acc', 'train loss', 'val loss (best/last)', 'gap', 'verdict'];
  const body = rows.map((r) => [
    r.config,
    r.hidden.length === 0 ? '-' : r.hidden.join('x'),
    r.params.toLocaleString('en-US'),
    String(r.epochs),
    String(r.bestEpoch),
    pct(r.bestValAcc),
    pct(r.testAcc),
    r.lastTrainLoss.toFixed(4),
    `${r.bestValLoss.toFixed(4)} / ${r.lastValLoss.toFixed(4)}`,
    r.lastGap.toFixed(4),
    verdictCell(r.verdict),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

/** The smallest `version` suffix for which none of the configurations' run folders exist yet. */
function freeSuffix(root: string, names: readonly string[]): string {
  for (let k = 1; ; k++) {
    const suffix = k === 1 ? '' : `-${k}`;
    if (names.every((n) => !existsSync(path.join(root, n + suffix)))) return suffix;
  }
}

/**
 * The lab's task: dense nets with one or two hidden layers of small, medium and large width on a
 * small subset of MNIST, with EarlyStopping (restoring the best weights), ModelCheckpoint (best and
 * last by val_loss, under each run's folder) and OverfittingMonitor; then the large multi-layer net
 * again with scheduled dropout, weight decay, and both. Prints and returns one row per configuration.
 */
export async function main(options: MnistSizesOptions = {}): Promise<MnistSizesResult> {
  const print = options.print ?? ((line: string) => console.log(line));
  const wanted = options.configs ?? CONFIGS.map((c) => c.name);
  const unknown = wanted.filter((n) => !CONFIGS.some((c) => c.name === n));
  if (unknown.length > 0) {
    throw new MisconfigurationError(`mnist-sizes option 'configs': unknown configuration(s) ${unknown.join(', ')}; valid: ${CONFIGS.map((c) => c.name).join(', ')}.`);
  }
  const configs = CONFIGS.filter((c) => wanted.includes(c.name));
  const units: Record<SizeName, number> = { small: 32, medium: 128, large: 512, ...options.sizes };
  const multiLayers = options.multiLayers ?? 2;
  const trainSize = options.trainSize ?? 2000;
  const valSize = options.valSize ?? 5000;
  const batchSize = options.batchSize ?? 64;
  const seed = options.seed ?? 42;
  const patience = options.patience ?? 6;
  const monitorPatience = options.monitorPatience ?? 5;
  const maxEpochs = options.maxEpochs ?? 40;
  const learningRate = options.learningRate ?? 1e-3;
  const weightDecay = options.weightDecay ?? 5e-3;
  const dropoutSchedule: DropoutSchedule = options.dropoutSchedule ?? { type: 'linear', start: 0.2, end: 0.5, duration: 10 };
  const saveDir = options.logDir ?? 'flint_logs';
  const name = 'mnist-sizes';
  const suffix = freeSuffix(path.join(saveDir, name), configs.map((c) => c.name));

  const started = performance.now();
  const train = await loadMnist({ split: 'train', limit: trainSize + valSize });
  const test = await loadMnist({ split: 'test', ...(options.testSize === undefined ? {} : { limit: options.testSize }) });
  if (train.count < trainSize + valSize) {
    throw new MisconfigurationError(`mnist-sizes options 'trainSize' + 'valSize' must be at most ${train.count} (received ${trainSize} + ${valSize}).`);
  }
  const full = TensorDataset.from([
    { data: train.images, shape: [train.count, 784] },
    { data: train.labels, shape: [train.count], dtype: 'int32' },
  ]) as TensorDataset<MnistBatch>;
  const testSet = TensorDataset.from([
    { data: test.images, shape: [test.count, 784] },
    { data: test.labels, shape: [test.count], dtype: 'int32' },
  ]) as TensorDataset<MnistBatch>;
  const [trainSet, valSet] = randomSplit(full, [trainSize, valSize], seed) as [TensorDataset<MnistBatch>, TensorDataset<MnistBatch>];
  print(
    `MNIST subset: ${trainSet.length} training, ${valSet.length} validation, ${testSet.length} test images; batch ${batchSize}, Adam lr ${learningRate}, ` +
      `up to ${maxEpochs} epochs, EarlyStopping patience ${patience} on val_loss (restoring the best weights).`,
  );

  const rows: SizeRow[] = [];
  let tensorboardCommand = '';
  try {
    for (const config of configs) {
      const hidden = Array.from({ length: config.net === 'single' ? 1 : multiLayers }, () => units[config.size]);
      const withDropout = config.regularization === 'dropout' || config.regularization === 'dropout+weight_decay';
      const withDecay = config.regularization === 'weight_decay' || config.regularization === 'dropout+weight_decay';
      seedEverything(seed);
      // MnistClassifier builds Dropout layers only for a rate > 0: the dropout runs build them at a
      // placeholder 0.5, and DropoutScheduler sets the scheduled rate at every epoch start (also when
      // the schedule starts at 0). Validation and test run in eval mode, without dropout.
      const dropout = withDropout ? 0.5 : 0;
      const module = withDecay
        ? new WeightDecayClassifier({ hidden, dropout, learningRate, weightDecay })
        : new MnistClassifier({ hidden, dropout, learningRate });
      // The hparam shows the schedule ("0.2->0.5"), not the placeholder rate the layers were built with.
      if (withDropout) module.saveHyperparameters({ dropout: scheduleText(dropoutSchedule) });
      const tb = new TensorBoardLogger({ saveDir, name, version: config.name + suffix });
      tensorboardCommand = `npx flint tensorboard ${tb.rootDir}`;
      const earlyStopping = new EarlyStopping({ monitor: 'val_loss', patience, restoreBestWeights: true });
      const checkpoint = new ModelCheckpoint({ monitor: 'val_loss', saveTopK: 1, saveLast: true, filename: '{epoch}-{val_loss:.4f}' });
      const monitor = new OverfittingMonitor({ patience: monitorPatience, verbose: false });
      const callbacks: Callback[] = [earlyStopping, checkpoint, monitor];
      if (withDropout) callbacks.push(new DropoutScheduler({ schedule: dropoutSchedule }));
      const trainer = new Trainer({
        maxEpochs,
        callbacks,
        logger: tb,
        enableModelSummary: false,
        enableProgressBar: options.enableProgressBar ?? true,
        deterministic: true,
        ...(options.backend === undefined ? {} : { backend: options.backend }),
      });
      const params = module.summaryData().totalParams;
      print(`\n${config.name}: 784 -> ${[...hidden, 10].join(' -> ')} (${params.toLocaleString('en-US')} parameters)${describeRegularization(config.regularization, dropoutSchedule, weightDecay)}`);
      const t0 = performance.now();
      try {
        await trainer.fit(module, new DataLoader(trainSet, { batchSize, shuffle: true, seed }), new DataLoader(valSet, { batchSize: 1000 }));
        const stoppedBy = trainer.stopReason?.rule ?? 'unknown'; // read before test(), which starts a new stage and clears it
        const testMetrics = await trainer.test(module, new DataLoader(testSet, { batchSize: 1000 }));
        const seconds = (performance.now() - t0) / 1000;
        const history = trainer.history;
        const valAcc = (epoch: number) => history.find((h) => h.epoch === epoch)?.metrics.val_acc ?? Number.NaN;
        const verdict = monitor.verdict;
        const last = verdict.last;
        const row: SizeRow = {
          config: config.name,
          net: config.net,
          size: config.size,
          regularization: config.regularization,
          hidden,
          params,
          epochs: trainer.currentEpoch,
          stoppedBy,
          bestEpoch: earlyStopping.bestEpoch,
          bestValAcc: Math.max(...history.map((h) => h.metrics.val_acc ?? Number.NaN)),
          valAccAtBest: valAcc(earlyStopping.bestEpoch),
          testAcc: testMetrics.test_acc ?? Number.NaN,
          bestValLoss: earlyStopping.bestScore,
          lastTrainLoss: last?.train ?? Number.NaN,
          lastValLoss: last?.val ?? Number.NaN,
          lastGap: last?.gap ?? Number.NaN,
          verdict,
          seconds,
          runDir: tb.logDir,
          bestCheckpoint: checkpoint.bestModelPath,
          lastCheckpoint: checkpoint.lastModelPath,
        };
        rows.push(row);
        print(`${config.name}: OverfittingMonitor: ${verdict.message}`);
        print(`${config.name}: test accuracy ${(100 * row.testAcc).toFixed(2)}% (weights of epoch ${row.bestEpoch}) in ${seconds.toFixed(1)} s, backend ${tf.getBackend()}`);
      } finally {
        module.namedParameters().forEach((p) => p.variable.dispose());
      }
    }
  } finally {
    trainSet.dispose();
    valSet.dispose();
    full.dispose();
    testSet.dispose();
  }
  const table = formatTable(rows);
  const seconds = (performance.now() - started) / 1000;
  print(`\n${table}\n`);
  print(`Total ${seconds.toFixed(0)} s. Open the runs in TensorBoard:\n  ${tensorboardCommand}`);
  return { rows, table, tensorboardCommand, seconds };
}

/** A dropout schedule in a few characters, for the HParams table: "0.2->0.5", "0.3", "0.5x0.9/5". */
export function scheduleText(schedule: DropoutSchedule): string {
  if (typeof schedule === 'function') return 'scheduled';
  switch (schedule.type) {
    case 'constant':
      return String(schedule.rate);
    case 'linear':
      return `${schedule.start}->${schedule.end}`;
    case 'cosine':
      return `${schedule.start}->${schedule.end} (cosine)`;
    case 'step':
      return `${schedule.start}x${schedule.gamma}/${schedule.stepSize}`;
    case 'exponential':
      return `${schedule.start}x${schedule.gamma}`;
    case 'warmup':
      return `${schedule.start ?? 0}->${schedule.peak}->${schedule.end}`;
  }
}

function describeRegularization(r: Regularization, schedule: DropoutSchedule, weightDecay: number): string {
  const drop = typeof schedule === 'function' ? 'scheduled dropout' : `dropout ${JSON.stringify(schedule)} per epoch`;
  const wd = `L2 weight decay ${weightDecay} in the loss`;
  if (r === 'dropout') return `, ${drop}`;
  if (r === 'weight_decay') return `, ${wd}`;
  if (r === 'dropout+weight_decay') return `, ${drop}, ${wd}`;
  return '';
}
