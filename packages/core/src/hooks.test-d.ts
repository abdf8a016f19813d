import { expectTypeOf, test } from 'vitest';
import type { CallbackHooks, HookModule } from './hooks.js';
import type { LightningModule } from './lightning-module.js';

test('callback hooks receive the LightningModule, though hooks.ts does not import it', () => {
  type ModuleArg = Parameters<NonNullable<CallbackHooks['onTrainEpochEnd']>>[1];
  expectTypeOf<ModuleArg>().toEqualTypeOf<HookModule>();
  expectTypeOf<LightningModule>().toExtend<ModuleArg>();
  expectTypeOf<ModuleArg>().toExtend<LightningModule>();
  expectTypeOf<ModuleArg['log']>().toEqualTypeOf<LightningModule['log']>();
});
