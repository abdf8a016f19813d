export { loadMnist, mnistDataDir, mnistFiles } from './mnist-data.js';
export type { LoadMnistOptions, MnistData, MnistSplit } from './mnist-data.js';
