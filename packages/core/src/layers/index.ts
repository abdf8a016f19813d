export { Conv1d, Conv2d, conv1dOptionsSchema, conv2dOptionsSchema } from './conv.js';
export type { Conv1dOptions, Conv2dOptions } from './conv.js';
export { MaxPool2d, AvgPool2d, maxPool2dOptionsSchema, avgPool2dOptionsSchema } from './pooling.js';
export type { MaxPool2dOptions, AvgPool2dOptions } from './pooling.js';
export { Flatten, flattenOptionsSchema } from './flatten.js';
export type { FlattenOptions } from './flatten.js';
export { Embedding, embeddingOptionsSchema } from './embedding.js';
export type { EmbeddingOptions } from './embedding.js';
export {
  BatchNorm1d,
  BatchNorm2d,
  LayerNorm,
  batchNorm1dOptionsSchema,
  batchNorm2dOptionsSchema,
  layerNormOptionsSchema,
} from './normalization.js';
export type { BatchNorm1dOptions, BatchNorm2dOptions, LayerNormOptions } from './normalization.js';
export {
  ReLU,
  LeakyReLU,
  ELU,
  SELU,
  SiLU,
  Sigmoid,
  Tanh,
  GELU,
  Softmax,
  LogSoftmax,
  leakyReLUOptionsSchema,
  eluOptionsSchema,
  geluOptionsSchema,
  softmaxOptionsSchema,
} from './activations.js';
export type { LeakyReLUOptions, ELUOptions, GELUOptions, SoftmaxOptions } from './activations.js';
export type { DataFormat } from './internal/shared.js';
