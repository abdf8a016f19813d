import { constants } from 'node:os';
import { InterruptedError, type InterruptSignal } from '@flint/core';

const SIGNALS: readonly InterruptSignal[] = ['SIGINT', 'SIGTERM'];

/** The loops let the event loop run (signal listeners, timers) at most this often. */
const YIELD_EVERY_MS = 10;

/**
 * SIGINT and SIGTERM listeners for one run of the trainer. The first signal is recorded and
 * reported to `onFirst` (the trainer requests a stop; its loops raise an InterruptedError at the
 * next batch boundary); a second one, while the run cleans up, ends the process at once. The
 * listeners replace Node's default action (die at once) while the run lasts; `dispose` removes them.
 *
 * The loops await mostly promises that are already resolved, which never lets the event loop run:
 * a signal listener (or a timer) would wait for the end of the fit. They call `yield()` per batch.
 */
export class InterruptListener {
  /** The first signal received. */
  received: InterruptSignal | undefined;
  private lastYield = performance.now();
  private readonly listener = (signal: NodeJS.Signals): void => {
    if (signal !== 'SIGINT' && signal !== 'SIGTERM') return;
    if (this.received !== undefined) {
      this.dispose();
      exitBySignal(signal);
    }
    this.received = signal;
    this.onFirst(signal);
  };

  constructor(private readonly onFirst: (signal: InterruptSignal) => void) {
    for (const signal of SIGNALS) process.on(signal, this.listener);
  }

  /** Lets pending signal listeners and timers run, at most every 10 ms (setImmediate costs a few µs). */
  async yield(): Promise<void> {
    const now = performance.now();
    if (now - this.lastYield < YIELD_EVERY_MS) return;
    this.lastYield = now;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /**
   * At a batch boundary: lets the event loop run now and then (so that signal listeners run at
   * all), and throws the InterruptedError, with where the run was, once a signal was received.
   */
  async check(where: () => ConstructorParameters<typeof InterruptedError>[1]): Promise<void> {
    await this.yield();
    if (this.received !== undefined) throw new InterruptedError(this.received, where());
  }

  dispose(): void {
    for (const signal of SIGNALS) process.off(signal, this.listener);
  }
}

/**
 * Ends the process as the signal would have, with the exit status 128 + signal number that shells
 * report (130 for SIGINT, 143 for SIGTERM). When nobody else listens for the signal, the process
 * raises it again and dies by it, as Python does after a KeyboardInterrupt, so that a calling shell
 * script stops too; otherwise (another listener would swallow it) it exits with that code.
 */
export function exitBySignal(signal: InterruptSignal): never {
  const code = 128 + constants.signals[signal];
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  process.exit(code);
}

/**
 * The one line after an interrupt: where the run stopped and how to resume it, from the last
 * checkpoint the run wrote through saveCheckpoint.
 */
export function interruptReport(error: InterruptedError, lastSaved: { path: string; weightsOnly: boolean } | undefined): string {
  const what = error.message.replace(/\.$/, '');
  if (error.position.stage !== 'fit') return `Flint: ${what}.`;
  if (lastSaved !== undefined && !lastSaved.weightsOnly) {
    const quoted = `'${lastSaved.path.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
    return `Flint: ${what}; resume with trainer.fit(module, train, val, { ckptPath: ${quoted} })`;
  }
  if (lastSaved !== undefined) return `Flint: ${what}; ${lastSaved.path} holds the weights only (ModelCheckpoint saveWeightsOnly) and cannot resume a fit.`;
  return `Flint: ${what}; no checkpoint was written, so the fit cannot resume from here (keep enableCheckpointing: true, or add a ModelCheckpoint with saveLast: true, to write last.ckpt when interrupted).`;
}
