export { MonitorCallback, modeSchema, minDeltaSchema } from './monitor-callback.js';
export type { MonitorMode, MonitorSettings } from './monitor-callback.js';
export { EarlyStopping, earlyStoppingOptionsSchema } from './early-stopping.js';
export type { EarlyStoppingOptions, EarlyStoppingTrigger } from './early-stopping.js';
