export { installNativeKernels, uninstallNativeKernels, nativeKernelsInstalled } from './install.js';
export type { NativeKernelsReport } from './install.js';
