/*
 * emscripten's Node glue, in tfjs-backend-wasm's stock build and in its threaded build (main thread and
 * every worker), adds two process handlers when a wasm module starts:
 *   process.on('uncaughtException', function (ex) { if (!(ex instanceof ExitStatus)) throw ex; })
 *   process.on('unhandledRejection', function (reason) { throw reason; })
 * A throw inside an 'uncaughtException' handler is fatal in a special way: any uncaught error of the
 * program, the user's own `throw` after `fit` included, then exits with code 7 and is reported at that
 * `throw ex;` line of the glue (for the threaded build, one minified line of ~57 KB printed before the
 * error). And tfjs's wrapper around the module's dispose removes every listener that existed when the
 * module started, the program's own included. Flint takes both handlers away once a module has
 * started and keeps the program's listeners across a dispose, so errors surface as Node reports them.
 */

const EVENTS = ['uncaughtException', 'unhandledRejection'] as const;

/**
 * Removes emscripten's two rethrowing handlers (recognized by their source) from `process`; returns
 * how many it removed. Self-contained and without comments: its source also runs, on one line, in
 * the threaded build's workers.
 */
export function removeEmscriptenProcessHandlers(): number {
  let removed = 0;
  for (const event of ['uncaughtException', 'unhandledRejection']) {
    for (const listener of process.listeners(event as 'uncaughtException')) {
      const source = String(listener).replace(/[\s;]/g, '');
      if (source === 'function(ex){if(!(exinstanceofExitStatus)){throwex}}' || source === 'function(reason){throwreason}') {
        process.removeListener(event, listener);
        removed++;
      }
    }
  }
  return removed;
}

/**
 * Appended to the threaded build's worker script: removes the handlers in each worker once its module
 * has started (emscripten calls `self.startWorker` then). One line: the script is embedded as is.
 */
export const workerScriptEpilogue = `;(function(){var start=self.startWorker;self.startWorker=function(){(${String(removeEmscriptenProcessHandlers).replace(/\s*\n\s*/g, ' ')})();return start.apply(this,arguments)}})();`;

/** The part of an emscripten module tfjs's BackendWasm binds (its `dispose` goes through tfjs's wrapper). */
interface DisposableModule {
  tfjs?: { dispose?: (...args: number[]) => number } & { [kept]?: true };
}
const kept = Symbol.for('flint.keepsProcessListeners');

/**
 * For a started wasm module: removes emscripten's handlers, and makes the module's dispose put back
 * the program's 'uncaughtException' / 'unhandledRejection' listeners that tfjs's wrapper removes.
 */
export function tameWasmModule(module: unknown): void {
  removeEmscriptenProcessHandlers();
  const tfjs = (module as DisposableModule | null | undefined)?.tfjs;
  const dispose = tfjs?.dispose;
  if (tfjs === undefined || dispose === undefined || tfjs[kept] === true) return;
  tfjs.dispose = (...args: number[]) => {
    const before = EVENTS.map((event) => process.rawListeners(event));
    try {
      return dispose(...args);
    } finally {
      EVENTS.forEach((event, i) => {
        const now = process.rawListeners(event);
        for (const listener of before[i]!) {
          if (!now.includes(listener)) process.on(event, listener as (...a: unknown[]) => void);
        }
      });
      removeEmscriptenProcessHandlers();
    }
  };
  tfjs[kept] = true;
}
