export { TensorBoardLogger, tensorBoardLoggerOptionsSchema } from './tensorboard-logger.js';
export type { TensorBoardLoggerOptions, TensorBoardLoggerState, ImageInput } from './tensorboard-logger.js';
export { CSVLogger, csvLoggerOptionsSchema } from './csv-logger.js';
export type { CSVLoggerOptions, CSVLoggerState } from './csv-logger.js';
export type { OnWriteError } from './internal/file-logger.js';
