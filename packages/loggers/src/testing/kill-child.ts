// Test-only child process for the kill tests: logs scalars until it is killed.
//   node --import register-ts.mjs kill-child.ts <saveDir> <maxQueue> <flushSecs>
// Prints "logged <step>" after each flushed batch so the parent knows how far the file is.
import { TensorBoardLogger } from '../index.js';

const [saveDir, maxQueue, flushSecs, mode] = process.argv.slice(2);
const logger = new TensorBoardLogger({ saveDir: saveDir!, name: 'kill', version: 0, maxQueue: Number(maxQueue), flushSecs: Number(flushSecs) });
logger.logHyperparams({ lr: 0.1 });

let step = 0;
function tick(): void {
  for (let i = 0; i < 50; i++, step++) logger.logMetrics({ loss: 1 / (step + 1), acc: step / 1000, epoch: 0 }, step);
  process.stdout.write(`logged ${step - 1}\n`);
  if (mode === 'once') return; // then idle: the parent sends a signal
  setImmediate(tick);
}
tick();
if (mode === 'once') setInterval(() => undefined, 1000);
