export { BoringModule } from './boring-module.js';
export type { BoringBatch } from './boring-module.js';
export { expectNoLeak } from './leaks.js';
