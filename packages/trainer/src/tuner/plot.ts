import { MisconfigurationError } from '@flint/core';

export interface LrPlotData {
  readonly lr: readonly number[];
  readonly loss: readonly number[];
  readonly logX: boolean;
  readonly suggestIdx: number | undefined;
  readonly width: number;
  readonly height: number;
}

/**
 * Draws the learning-rate curve with Chart.js on a @napi-rs/canvas canvas (both from npm, no
 * browser, no download at install time) and encodes it as PNG. Loaded on first use.
 */
export async function renderLrPlot(d: LrPlotData): Promise<Uint8Array> {
  let canvasLib: typeof import('@napi-rs/canvas');
  let chartLib: typeof import('chart.js');
  try {
    canvasLib = await import('@napi-rs/canvas');
    chartLib = await import('chart.js');
  } catch (error) {
    throw new MisconfigurationError('LRFinderResult.plot needs the packages chart.js and @napi-rs/canvas (dependencies of @flint/trainer): reinstall them.', { cause: error });
  }
  const { Chart, registerables } = chartLib;
  Chart.register(...registerables);
  const canvas = canvasLib.createCanvas(d.width, d.height);
  const ctx = canvas.getContext('2d');
  // White background (PNG would otherwise be transparent).
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, d.width, d.height);
  const points = d.lr.map((x, i) => ({ x, y: d.loss[i]! })).filter((p) => Number.isFinite(p.y));
  const datasets: Array<Record<string, unknown>> = [
    { label: 'smoothed loss', data: points, borderColor: '#1f77b4', backgroundColor: '#1f77b4', pointRadius: 0, borderWidth: 2, showLine: true },
  ];
  if (d.suggestIdx !== undefined) {
    datasets.push({
      label: `suggestion (lr = ${d.lr[d.suggestIdx]!.toExponential(2)})`,
      data: [{ x: d.lr[d.suggestIdx]!, y: d.loss[d.suggestIdx]! }],
      borderColor: '#d62728',
      backgroundColor: '#d62728',
      pointRadius: 6,
      showLine: false,
    });
  }
  const chart = new Chart(ctx as never, {
    type: 'scatter',
    data: { datasets: datasets as never },
    options: {
      animation: false,
      responsive: false,
      devicePixelRatio: 1,
      scales: {
        x: { type: d.logX ? 'logarithmic' : 'linear', title: { display: true, text: 'Learning rate' } },
        y: { title: { display: true, text: 'Loss' } },
      },
    },
  });
  try {
    chart.draw();
    return new Uint8Array(await canvas.encode('png'));
  } finally {
    chart.destroy();
  }
}
