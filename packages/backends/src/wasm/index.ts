export { installWasmImprovements, uninstallWasmImprovements } from './install.js';
export { wasmImprovementsOptionsSchema, MAX_WASM_THREADS, AUTO_WASM_THREADS_CAP } from './options.js';
export type { WasmImprovementsOptions, WasmSetupReport, AddedKernelSource } from './options.js';
