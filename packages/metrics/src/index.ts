export { Metric } from './metric.js';
export type { MetricStateDict, HostState, StateReduce, States } from './metric.js';
export { Accuracy, accuracyOptionsSchema } from './accuracy.js';
export type { AccuracyOptions } from './accuracy.js';
export { Precision, Recall, precisionRecallOptionsSchema } from './precision-recall.js';
export type { PrecisionOptions, RecallOptions } from './precision-recall.js';
export { FBetaScore, F1Score, fBetaScoreOptionsSchema, f1ScoreOptionsSchema } from './f-beta.js';
export type { FBetaScoreOptions, F1ScoreOptions } from './f-beta.js';
export { ConfusionMatrix, confusionMatrixOptionsSchema } from './confusion-matrix.js';
export type { ConfusionMatrixOptions } from './confusion-matrix.js';
export { AUROC, AveragePrecision, curveOptionsSchema } from './auroc.js';
export type { AUROCOptions, AveragePrecisionOptions } from './auroc.js';
export {
  MeanSquaredError,
  MeanAbsoluteError,
  R2Score,
  meanSquaredErrorOptionsSchema,
  meanAbsoluteErrorOptionsSchema,
  r2ScoreOptionsSchema,
} from './regression.js';
export type { MeanSquaredErrorOptions, MeanAbsoluteErrorOptions, R2ScoreOptions } from './regression.js';
export { MetricCollection, metricCollectionOptionsSchema } from './metric-collection.js';
export type { MetricCollectionOptions } from './metric-collection.js';
