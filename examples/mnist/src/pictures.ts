/**
 * Pictures of the main job's test results for TensorBoard's Images tab, drawn as RGB pixels (the
 * logger encodes them as PNG): a grid of misclassified test digits labelled with the true and the
 * predicted class, and the confusion matrix. Labels use a 3x5 pixel font, so no canvas is needed.
 */
import type { ImageInput } from '@flint/loggers';

/** 3x5 glyphs of 0-9, one row of 3 bits per line (MSB left). */
const DIGITS = [
  [7, 5, 5, 5, 7],
  [2, 6, 2, 2, 7],
  [7, 1, 7, 4, 7],
  [7, 1, 7, 1, 7],
  [5, 5, 7, 1, 1],
  [7, 4, 7, 1, 7],
  [7, 4, 7, 5, 7],
  [7, 1, 1, 1, 1],
  [7, 5, 7, 5, 7],
  [7, 5, 7, 1, 7],
];
/** A few letters for the labels ("true", "pred"). */
const LETTERS: Record<string, number[]> = {
  t: [2, 7, 2, 2, 3],
  r: [0, 6, 5, 4, 4],
  u: [0, 5, 5, 5, 7],
  e: [7, 5, 7, 4, 7],
  p: [7, 5, 7, 4, 4],
  d: [1, 1, 7, 5, 7],
  ' ': [0, 0, 0, 0, 0],
  '>': [4, 2, 1, 2, 4],
  ':': [0, 2, 0, 2, 0],
};

type RGB = readonly [number, number, number];

class Canvas {
  readonly data: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
    background: RGB,
  ) {
    this.data = new Uint8Array(width * height * 3);
    this.fill(0, 0, width, height, background);
  }

  fill(x: number, y: number, w: number, h: number, c: RGB): void {
    for (let j = Math.max(0, y); j < Math.min(this.height, y + h); j++) {
      for (let i = Math.max(0, x); i < Math.min(this.width, x + w); i++) {
        const o = (j * this.width + i) * 3;
        this.data[o] = c[0];
        this.data[o + 1] = c[1];
        this.data[o + 2] = c[2];
      }
    }
  }

  /** Text in the 3x5 font, each font pixel `scale` pixels; returns the width drawn. */
  text(x: number, y: number, s: string, c: RGB, scale: number): number {
    let cx = x;
    for (const ch of s) {
      const glyph = /[0-9]/.test(ch) ? DIGITS[Number(ch)]! : (LETTERS[ch] ?? LETTERS[' ']!);
      glyph.forEach((bits, row) => {
        for (let col = 0; col < 3; col++) if (bits & (4 >> col)) this.fill(cx + col * scale, y + row * scale, scale, scale, c);
      });
      cx += 4 * scale;
    }
    return cx - x;
  }

  image(): ImageInput {
    return { width: this.width, height: this.height, channels: 3, data: this.data };
  }
}

/** Width in pixels of `s` in the 3x5 font at `scale`. */
const textWidth = (s: string, scale: number): number => s.length * 4 * scale - scale;

const GREEN: RGB = [40, 160, 60];
const RED: RGB = [210, 40, 40];
const WHITE: RGB = [255, 255, 255];
const INK: RGB = [30, 30, 30];

/**
 * Misclassified digits in a grid (`columns` wide), each drawn at 2x with "N > M" beneath: the true
 * class N in green, the predicted class M in red. `images` holds 784 pixels in [0, 1] per digit.
 */
export function misclassifiedGrid(
  images: ArrayLike<number>,
  labels: ArrayLike<number>,
  predicted: ArrayLike<number>,
  options: { max?: number; columns?: number } = {},
): { image: ImageInput; shown: number; wrong: number } {
  const max = options.max ?? 32;
  const columns = options.columns ?? 8;
  const wrong: number[] = [];
  for (let i = 0; i < labels.length; i++) if (labels[i] !== predicted[i]) wrong.push(i);
  const shown = Math.min(max, wrong.length);
  const rows = Math.max(1, Math.ceil(shown / columns));
  const zoom = 2;
  const tile = 28 * zoom;
  const labelH = 5 * 3 + 6;
  const cellW = tile + 8;
  const cellH = tile + labelH + 8;
  const canvas = new Canvas(columns * cellW, rows * cellH, WHITE);
  for (let k = 0; k < shown; k++) {
    const i = wrong[k]!;
    const x0 = (k % columns) * cellW + 4;
    const y0 = Math.floor(k / columns) * cellH + 4;
    for (let py = 0; py < 28; py++) {
      for (let px = 0; px < 28; px++) {
        const v = 255 - Math.round(255 * Math.min(1, Math.max(0, images[i * 784 + py * 28 + px]!)));
        canvas.fill(x0 + px * zoom, y0 + py * zoom, zoom, zoom, [v, v, v]);
      }
    }
    const lx = x0 + Math.floor((tile - textWidth('0>0', 3)) / 2);
    canvas.text(lx, y0 + tile + 4, String(labels[i]), GREEN, 3);
    canvas.text(lx + 12, y0 + tile + 4, '>', INK, 3);
    canvas.text(lx + 24, y0 + tile + 4, String(predicted[i]), RED, 3);
  }
  return { image: canvas.image(), shown, wrong: wrong.length };
}

/** The confusion matrix counts[true][predicted] from labels and predictions. */
export function confusionMatrix(labels: ArrayLike<number>, predicted: ArrayLike<number>, classes = 10): number[][] {
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) m[labels[i]!]![predicted[i]!]! += 1;
  return m;
}

/**
 * The confusion matrix as a picture: rows are the true class, columns the predicted one; each cell
 * shows its count and is shaded by its share of the row (the diagonal is green, errors red).
 */
export function confusionMatrixImage(matrix: readonly (readonly number[])[]): ImageInput {
  const n = matrix.length;
  const cell = 56; // room for a 4-digit count at 2x (the diagonal of 10,000 test images)
  const margin = 40;
  const canvas = new Canvas(margin + n * cell + 4, margin + n * cell + 4, WHITE);
  canvas.text(margin, 4, 'pred', INK, 2);
  canvas.text(2, margin - 14, 'true', INK, 2);
  for (let c = 0; c < n; c++) canvas.text(margin + c * cell + cell / 2 - 3, 20, String(c), INK, 2);
  for (let r = 0; r < n; r++) {
    canvas.text(18, margin + r * cell + cell / 2 - 5, String(r), INK, 2);
    const total = matrix[r]!.reduce((a, b) => a + b, 0) || 1;
    for (let c = 0; c < n; c++) {
      const count = matrix[r]![c]!;
      const share = count / total;
      const strength = r === c ? share : Math.min(1, share * 5);
      const base: RGB = r === c ? [40, 160, 60] : [210, 40, 40];
      const color: RGB = [0, 1, 2].map((k) => Math.round(255 + (base[k]! - 255) * strength)) as unknown as RGB;
      const x = margin + c * cell;
      const y = margin + r * cell;
      canvas.fill(x, y, cell - 2, cell - 2, color);
      if (count > 0) {
        const s = String(count);
        const scale = s.length > 4 ? 1 : 2;
        canvas.text(x + Math.floor((cell - 2 - textWidth(s, scale)) / 2), y + Math.floor((cell - 2 - 5 * scale) / 2), s, strength > 0.6 ? WHITE : INK, scale);
      }
    }
  }
  return canvas.image();
}
