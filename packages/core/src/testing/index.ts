export { BoringModule } from './boring-module.js';
export type { BoringBatch } from './boring-module.js';
export { expectNoLeak } from './leaks.js';
export {
  randomClassificationDataset,
  randomRegressionDataset,
  randomClassificationOptionsSchema,
  randomRegressionOptionsSchema,
} from './data.js';
export type { RandomClassificationOptions, RandomRegressionOptions } from './data.js';
export { askPythonOracle, findOraclePython, runOracleScript } from './python-oracle.js';
export type { OracleAnswer, OraclePython, OracleVenv } from './python-oracle.js';
export { emptyCheckpoint } from './checkpoint.js';
export { worstRelativeDifference } from './compare.js';
