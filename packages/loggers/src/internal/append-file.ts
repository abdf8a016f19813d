import * as fs from 'node:fs';

/**
 * A file that only ever grows by whole chunks (records, CSV rows): each `append` is written in full or,
 * when the write fails halfway (disk full), the file is cut back to its previous size before the
 * error is thrown. A killed process leaves at most one partial chunk at the very end.
 */
export class AppendFile {
  private fd: number | undefined;
  private size: number;

  constructor(readonly path: string) {
    this.fd = fs.openSync(path, 'a');
    this.size = fs.fstatSync(this.fd).size;
  }

  /** Bytes of whole chunks in the file. */
  get bytes(): number {
    return this.size;
  }

  get closed(): boolean {
    return this.fd === undefined;
  }

  append(chunk: Uint8Array): void {
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    let offset = 0;
    try {
      while (offset < chunk.length) offset += fs.writeSync(this.fd, chunk, offset, chunk.length - offset);
    } catch (error) {
      if (offset > 0) {
        try {
          fs.ftruncateSync(this.fd, this.size);
        } catch {
          // Left with a partial chunk at the end, which readers skip.
        }
      }
      throw error;
    }
    this.size += chunk.length;
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    fs.closeSync(fd);
  }

  /** Closes, ignoring errors (after a write error was reported). */
  abandon(): void {
    try {
      this.close();
    } catch {
      // already reported
    }
  }
}
