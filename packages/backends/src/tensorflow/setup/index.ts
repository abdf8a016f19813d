export { setupNative, setupNativeOptionsSchema } from './setup-native.js';
export type { SetupNativeOptions, SetupNativeReport } from './setup-native.js';
export { probeNativeBackend, quietTensorFlowEnv } from './probe.js';
export type { NativeProbeResult, ProbeNativeOptions } from './probe.js';
export { TENSORFLOW_VERSION, TFJS_NODE_VERSION } from './wheel.js';
