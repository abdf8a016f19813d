/**
 * Flushes open loggers when the process ends: on 'exit' (normal end, process.exit, uncaught
 * exception) and on SIGINT/SIGTERM. The handlers are installed once, while at least one logger is
 * open, and removed when the last one is finalized. A signal is not swallowed: when no one else
 * listens for it, the handler removes itself and raises the signal again, so the process ends as it
 * would have without Flint (exit code 128 + signal).
 */
export interface ExitFlushable {
  /** Synchronous, must not throw. */
  flushOnExit(reason: 'exit' | NodeJS.Signals): void;
}

const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
const open = new Set<ExitFlushable>();
let installed = false;

function flushAll(reason: 'exit' | NodeJS.Signals): void {
  for (const item of [...open]) {
    try {
      item.flushOnExit(reason);
    } catch {
      // Never let a flush failure change how the process ends.
    }
  }
}

function onExit(): void {
  flushAll('exit');
}

function onSignal(signal: NodeJS.Signals): void {
  flushAll(signal);
  if (process.listenerCount(signal) === 1) {
    // We are the only listener: behave as the default action would.
    uninstall();
    process.kill(process.pid, signal);
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', onExit);
  for (const s of SIGNALS) process.off(s, onSignal);
}

export function registerExitFlush(item: ExitFlushable): void {
  open.add(item);
  install();
}

export function unregisterExitFlush(item: ExitFlushable): void {
  open.delete(item);
  if (open.size === 0) uninstall();
}

/** For tests: whether the process handlers are installed. */
export function exitFlushInstalled(): boolean {
  return installed;
}
