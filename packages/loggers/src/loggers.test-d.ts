import type { Logger } from '@flint/core';
import { describe, expectTypeOf, it } from 'vitest';
import { CSVLogger, TensorBoardLogger, type CSVLoggerOptions, type TensorBoardLoggerOptions } from './index.js';

describe('types', () => {
  it('both loggers are Loggers the Trainer accepts, with checkpointable state', () => {
    expectTypeOf(new TensorBoardLogger()).toMatchTypeOf<Logger>();
    expectTypeOf(new CSVLogger()).toMatchTypeOf<Logger>();
    expectTypeOf(new TensorBoardLogger().stateDict()).toMatchTypeOf<Record<string, unknown>>();
  });

  it('options are the schema input: everything optional, unknown keys rejected', () => {
    expectTypeOf<{}>().toMatchTypeOf<TensorBoardLoggerOptions>();
    expectTypeOf<{ onWriteError: 'continue'; version: 3 }>().toMatchTypeOf<TensorBoardLoggerOptions>();
    expectTypeOf<{ onWriteError: 'ignore' }>().not.toMatchTypeOf<TensorBoardLoggerOptions>();
    expectTypeOf<{ flushLogsEveryNSteps: 10 }>().toMatchTypeOf<CSVLoggerOptions>();
  });
});
