import type { EventEmitter } from 'eventemitter3';
import type { TrainerEvents } from '../events.js';

/**
 * The emit function of a trainer's observer events. Listeners are observers: one that throws does
 * not stop the run; the first throw of each event is reported in one line (on stderr for 'message'
 * listeners, with `print` for the others).
 */
export function observerEmitter(
  events: EventEmitter<TrainerEvents>,
  print: (line: string) => void,
): <K extends keyof TrainerEvents>(event: K, ...args: TrainerEvents[K]) => void {
  const failed = new Set<keyof TrainerEvents>();
  return (event, ...args) => {
    try {
      (events.emit as (e: typeof event, ...a: typeof args) => boolean).call(events, event, ...args);
    } catch (error) {
      if (failed.has(event)) return;
      failed.add(event);
      const line = `Flint: a listener of trainer.events '${event}' threw (${error instanceof Error ? `${error.name}: ${error.message.split('\n')[0]}` : String(error)}); training goes on. Reported once per event.`;
      if (event === 'message') process.stderr.write(`${line}\n`);
      else print(line);
    }
  };
}
