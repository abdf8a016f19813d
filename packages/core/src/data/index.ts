export { inferBatchSize, describeBatch } from './batch.js';
export type { TensorBatch } from './batch.js';
export { TensorDataset, tensorDatasetOptionsSchema } from './tensor-dataset.js';
export type {
  Column,
  ColumnData,
  ColumnDtype,
  NestedNumbers,
  RowRange,
  RowValue,
  TensorDatasetOptions,
  TensorDatasetSource,
  TypedArray,
} from './tensor-dataset.js';
export { DataLoader, dataLoaderOptionsSchema } from './data-loader.js';
export type { DataLoaderOptions } from './data-loader.js';
export { DataModule, isDataModule } from './data-module.js';
export { randomSplit } from './random-split.js';
export { RecordDataset, RecordFileWriter, writeRecordFile, recordDatasetOptionsSchema, RECORD_FILE_MAGIC } from './record-file.js';
export type { RecordDatasetOptions, RecordDtype, RecordField, RecordFieldLayout, RecordSample, RecordStreamStats } from './record-file.js';
