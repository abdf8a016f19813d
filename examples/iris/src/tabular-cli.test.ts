import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseTabularCli } from './tabular-cli.js';

describe('parseTabularCli', () => {
  it('turns the flags into main() options and leaves the rest to its defaults', () => {
    expect(parseTabularCli('usage', ['--epochs', '3', '--lr', '0.5', '--seed', '0', '--models', 'multi', '--backend', 'cpu', '--progress'])).toEqual({
      epochs: 3,
      hidden: undefined,
      batchSize: undefined,
      learningRate: 0.5,
      seed: 0,
      models: ['multi'],
      logDir: undefined,
      backend: 'cpu',
      enableProgressBar: true,
    });
  });

  it.each([
    [['--epochs', '1.5'], "--epochs must be a whole number > 0 (received '1.5')"],
    [['--models', 'single,deep'], "--models must be a comma-separated list of single, multi (received 'single,deep')"],
    [['--backend', 'gpu'], "--backend must be wasm, cpu or tensorflow (received 'gpu')"],
  ])('a bad value exits with 2 and names the flag: %j', (args, message) => {
    const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
    const run = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr.trim()).toBe(message);
  });
});
