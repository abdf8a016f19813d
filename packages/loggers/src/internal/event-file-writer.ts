import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AppendFile } from './append-file.js';
import { encodeEvent, type EventInput } from './proto.js';
import { encodeRecord } from './tfrecord.js';

let fileCounter = 0;

/** TensorBoard's test for an event file: the basename contains `tfevents`. */
export function isEventFileName(name: string): boolean {
  return name.includes('tfevents') && !name.endsWith('.profile-empty');
}

/**
 * A name `events.out.tfevents.<10-digit secs>.<host>.<pid>.<counter><suffix>` that sorts after every
 * event file already in the folder: TensorBoard's Python loader reads a run's files in name order and
 * never goes back, so a new writer session must come last. When the clock alone would not do that
 * (same second, or a clock set back), the seconds in the name are raised; records keep the real time.
 */
export function nextEventFileName(existing: readonly string[], nowSecs: number, suffix = ''): string {
  const host = os.hostname().replace(/[^A-Za-z0-9_-]/g, '_') || 'localhost';
  const last = existing.filter(isEventFileName).sort().at(-1);
  const counter = fileCounter++;
  const make = (s: number): string => `events.out.tfevents.${String(s).padStart(10, '0')}.${host}.${process.pid}.${counter}${suffix}`;
  let secs = Math.floor(nowSecs);
  let name = make(secs);
  while (last !== undefined && name <= last) name = make(++secs);
  return name;
}

export interface EventFileWriterOptions {
  /** Records queued before a flush is forced. */
  readonly maxQueue: number;
  /** Writer name stored in the first event (`source_metadata.writer`). */
  readonly sourceWriter: string;
  /** File name suffix (after the counter). */
  readonly suffix?: string;
  /** The clock in seconds (tests pin it). */
  readonly now?: () => number;
}

/**
 * One writer session: a new event file whose first record is the file-version event. Events are
 * TFRecord-framed and queued in memory; `flush` appends them in one write, whole records only.
 */
export class EventFileWriter {
  readonly path: string;
  private readonly file: AppendFile;
  private queue: Uint8Array[] = [];
  private readonly now: () => number;

  constructor(
    readonly dir: string,
    private readonly options: EventFileWriterOptions,
  ) {
    this.now = options.now ?? (() => Date.now() / 1000);
    fs.mkdirSync(dir, { recursive: true });
    this.path = path.join(dir, nextEventFileName(fs.readdirSync(dir), this.now(), options.suffix));
    this.file = new AppendFile(this.path);
    this.add({ wallTime: this.now(), fileVersion: 'brain.Event:2', sourceWriter: options.sourceWriter });
  }

  /** Bytes of whole records on disk (what a resume may truncate the file back to). */
  get bytesWritten(): number {
    return this.file.bytes;
  }

  get closed(): boolean {
    return this.file.closed;
  }

  /** Current wall time in seconds. */
  wallTime(): number {
    return this.now();
  }

  /** Queues one event; flushes once `maxQueue` records are waiting. */
  add(event: EventInput): void {
    if (this.file.closed) throw new Error(`event file ${this.path} is closed`);
    this.queue.push(encodeRecord(encodeEvent(event)));
    if (this.queue.length >= this.options.maxQueue) this.flush();
  }

  /** Appends every queued record, synchronously. */
  flush(): void {
    if (this.file.closed || this.queue.length === 0) return;
    const chunk = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue);
    this.queue = [];
    this.file.append(chunk);
  }

  /** Flushes and closes. Safe to call twice. */
  close(): void {
    if (this.file.closed) return;
    try {
      this.flush();
    } finally {
      this.queue = [];
      this.file.close();
    }
  }

  /** Drops queued records and closes without writing (after a write error). */
  abandon(): void {
    this.queue = [];
    this.file.abandon();
  }
}
