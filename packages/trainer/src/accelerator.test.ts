import * as tf from '@tensorflow/tfjs';
import { BackendError, MisconfigurationError } from '@flint/core';
import { afterAll, describe, expect, it } from 'vitest';
import { describeChoice, selectBackend } from './accelerator.js';
import { probeNativeBackend } from '@flint/backends';

const suiteBackend = process.env.FLINT_BACKEND ?? 'wasm';
afterAll(async () => {
  await tf.setBackend(suiteBackend);
});

describe('accelerator selection', () => {
  it("'auto' takes tfjs-node when it is built and works, else wasm, and says what it skipped", async () => {
    const native = await probeNativeBackend();
    const { choice } = await selectBackend({ accelerator: 'auto' });
    expect(choice.reason).toContain('@tensorflow/tfjs-node-gpu is not installed');
    if (native.ok) {
      expect(choice.backend).toBe('tensorflow');
      expect(tf.getBackend()).toBe('tensorflow');
    } else {
      expect(choice.backend).toBe('wasm');
      expect(tf.getBackend()).toBe('wasm');
      expect(choice.reason).toContain(native.reason);
    }
    expect(describeChoice(choice)).toMatch(/^Flint: accelerator cpu, backend '(wasm|tensorflow)' from @tensorflow\/tfjs-(backend-wasm|node)/);
  });

  it('an explicit backend is used as asked', async () => {
    expect((await selectBackend({ accelerator: 'auto', backend: 'cpu' })).choice.backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    const wasm = await selectBackend({ accelerator: 'cpu', backend: 'wasm' });
    expect(wasm.choice).toMatchObject({ backend: 'wasm', accelerator: 'cpu', provider: '@tensorflow/tfjs-backend-wasm' });
    expect(tf.getBackend()).toBe('wasm');
    // asking again is free and not printed twice
    expect((await selectBackend({ accelerator: 'cpu', backend: 'wasm' })).fresh).toBe(false);
  });

  it('asking for what is not there fails with what to install, and never runs elsewhere', async () => {
    const before = tf.getBackend();
    await expect(selectBackend({ accelerator: 'gpu' })).rejects.toThrow(BackendError);
    await expect(selectBackend({ accelerator: 'gpu' })).rejects.toThrow(
      "Trainer option accelerator 'gpu' cannot run here: @tensorflow/tfjs-node-gpu is not installed. To use it, install @tensorflow/tfjs-node-gpu (npm install @tensorflow/tfjs-node-gpu) on a machine with CUDA.",
    );
    await expect(selectBackend({ accelerator: 'gpu', backend: 'wasm' })).rejects.toThrow(MisconfigurationError);
    const native = await probeNativeBackend();
    if (!native.ok) {
      await expect(selectBackend({ accelerator: 'cpu', backend: 'tensorflow' })).rejects.toThrow(/backend 'tensorflow' cannot run here: .*To use it, install @tensorflow\/tfjs-node .*npx flint setup-native/);
    }
    expect(tf.getBackend()).toBe(before);
  });
});
