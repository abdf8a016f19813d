import type { Metrics } from '@flint/core';
import type { EventEmitter } from 'eventemitter3';
import type { TrainerEvents } from './events.js';

/** Where the progress bar writes. */
export interface ProgressStream {
  write(text: string): boolean;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

function formatMetrics(metrics: Metrics): string {
  return Object.entries(metrics)
    .map(([k, v]) => `${k}=${Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(2)}`)
    .join(' ');
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  const sec = Math.floor(s % 60);
  return m > 0 ? `${m}:${String(sec).padStart(2, '0')}` : `${sec}s`;
}

/**
 * The terminal progress bar: epoch, batch, it/s, ETA and the progBar metrics, redrawn in place on a
 * TTY (at most ~10 times a second), plain lines (one per epoch, one per validation) otherwise. It only
 * observes `trainer.events`.
 */
export class ProgressBar {
  private epochStarted = 0;
  private lastDraw = 0;
  private epoch = 0;
  private lastLine = '';

  constructor(private readonly stream: ProgressStream = process.stdout) {}

  attach(events: EventEmitter<TrainerEvents>): () => void {
    const onEpochStart = (info: TrainerEvents['trainEpochStart'][0]) => {
      this.epoch = info.epoch;
      this.epochStarted = performance.now();
      this.lastDraw = 0;
    };
    const onBatch = (info: TrainerEvents['trainBatchEnd'][0]) => {
      if (!this.stream.isTTY) return;
      const now = performance.now();
      const last = info.batchIdx + 1 >= info.numBatches;
      if (!last && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      const done = info.batchIdx + 1;
      const elapsed = (now - this.epochStarted) / 1000;
      const rate = done / Math.max(elapsed, 1e-9);
      const total = Number.isFinite(info.numBatches) ? info.numBatches : undefined;
      const eta = total === undefined ? Number.NaN : (total - done) / rate;
      const width = 24;
      const bar = total === undefined ? '' : `${'█'.repeat(Math.round((done / total) * width)).padEnd(width, '░')} `;
      this.draw(
        `Epoch ${info.epoch} ${bar}${done}/${total ?? '?'} [${formatSeconds(elapsed)}<${formatSeconds(eta)}, ${rate.toFixed(2)}it/s] ${formatMetrics(info.metrics)}`,
      );
    };
    const onEpochEnd = (info: TrainerEvents['trainEpochEnd'][0]) => {
      const seconds = (performance.now() - this.epochStarted) / 1000;
      const line = `Epoch ${info.epoch}: ${formatSeconds(seconds)} ${formatMetrics(info.metrics)}`.trimEnd();
      this.finishLine(line);
    };
    const onMessage = (text: string) => this.finishLine(text);
    events.on('trainEpochStart', onEpochStart);
    events.on('trainBatchEnd', onBatch);
    events.on('trainEpochEnd', onEpochEnd);
    events.on('message', onMessage);
    return () => {
      events.off('trainEpochStart', onEpochStart);
      events.off('trainBatchEnd', onBatch);
      events.off('trainEpochEnd', onEpochEnd);
      events.off('message', onMessage);
    };
  }

  private draw(text: string): void {
    const cols = this.stream.columns ?? 120;
    const line = text.length > cols - 1 ? text.slice(0, cols - 1) : text;
    this.stream.write(`\r${line}${' '.repeat(Math.max(0, this.lastLine.length - line.length))}`);
    this.lastLine = line;
  }

  private finishLine(text: string): void {
    if (this.stream.isTTY && this.lastLine.length > 0) {
      this.stream.write(`\r${' '.repeat(this.lastLine.length)}\r`);
      this.lastLine = '';
    }
    this.stream.write(`${text}\n`);
  }
}
