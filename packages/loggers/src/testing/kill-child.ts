// Test-only child process for the kill tests, run through ts-loader.mjs:
//   node --import ./register-ts.mjs kill-child.ts <saveDir> <maxQueue> <mode>
// mode 'loop': logs scalars until killed, printing "logged <last step>" after each batch of 50.
// mode 'idle': logs 50 steps, prints "logged 49", then idles (the parent sends a signal).
// mode 'exit': logs 50 steps, then process.exit(3) without finalize.
import { CSVLogger, TensorBoardLogger } from '../index.js';

const [saveDir, maxQueue, mode] = process.argv.slice(2);
const logger = new TensorBoardLogger({ saveDir: saveDir!, name: 'kill', version: 0, maxQueue: Number(maxQueue), flushSecs: 3600 });
logger.logHyperparams({ lr: 0.1 });
// Rows stay in memory (fewer than flushLogsEveryNSteps): only the exit handlers write them.
const csv = new CSVLogger({ saveDir: saveDir!, name: 'kill', version: 0 });

let step = 0;
function batch(): void {
  for (let i = 0; i < 50; i++, step++) {
    logger.logMetrics({ loss: 1 / (step + 1), acc: step / 1000, epoch: 0 }, step);
    if (mode !== 'loop') csv.logMetrics({ loss: step }, step);
  }
  process.stdout.write(`logged ${step - 1}\n`);
}

batch();
if (mode === 'loop') {
  const again = (): void => {
    batch();
    setImmediate(again);
  };
  setImmediate(again);
} else if (mode === 'exit') {
  process.exit(3);
} else {
  setInterval(() => undefined, 1000);
}
