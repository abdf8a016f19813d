// The page: loads the model Flint exported (TensorFlow.js Layers format) with tfjs (webgl, else cpu),
// classifies the test digits and what is drawn on the pad. With ?report=1 it POSTs its predictions
// to /results (the example's test compares them with Node's); ?demo=1 draws a digit on the pad.
/* global tf */
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

async function pickBackend() {
  for (const name of ['webgl', 'cpu']) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
    } catch {
      // not available here: try the next one
    }
  }
  throw new Error('no TensorFlow.js backend works in this browser');
}

function drawDigit(canvas, pixels) {
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = pixels[i];
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

function argMax(row) {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Class probabilities for images given as bytes 0..255, [n * 784]. */
function classify(model, bytes, n) {
  return tf.tidy(() => tf.softmax(model.predict(tf.div(tf.tensor2d(bytes, [n, 784], 'float32'), 255))).arraySync());
}

async function classifyTestDigits(model) {
  const digits = await (await fetch('digits.json')).json();
  const bytes = Uint8Array.from(atob(digits.pixels), (c) => c.charCodeAt(0));
  const probabilities = classify(model, bytes, digits.count);
  let correct = 0;
  const grid = $('digits');
  for (let i = 0; i < digits.count; i++) {
    const predicted = argMax(probabilities[i]);
    if (predicted === digits.labels[i]) correct++;
    const cell = document.createElement('div');
    cell.className = predicted === digits.labels[i] ? 'digit' : 'digit wrong';
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 28;
    drawDigit(canvas, bytes.subarray(i * 784, (i + 1) * 784));
    const label = document.createElement('span');
    label.textContent = predicted === digits.labels[i] ? String(predicted) : `${predicted} (${digits.labels[i]})`;
    cell.append(canvas, label);
    grid.append(cell);
  }
  $('accuracy').textContent = `${correct} of ${digits.count} right (red: wrong, true label in brackets)`;
  return probabilities;
}

/**
 * The pad's drawing as MNIST prepares digits: the ink's bounding box scaled (by averaging areas, as
 * a downsampling filter would) into a 20x20 box, then moved so that its centre of mass is the
 * centre of the 28x28 image. Bytes 0..255, or undefined for an empty pad.
 */
function padToBytes(pad) {
  const { data, width, height } = pad.getContext('2d').getImageData(0, 0, pad.width, pad.height);
  let [x0, y0, x1, y1] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[4 * (y * width + x)] > 0) [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
    }
  }
  if (x1 < 0) return undefined;
  const size = Math.max(x1 - x0, y1 - y0) + 1;
  const scale = 20 / size;
  const box = new Float32Array(20 * 20);
  const left = (size - (x1 - x0 + 1)) / 2;
  const top = (size - (y1 - y0 + 1)) / 2;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const v = data[4 * (y * width + x)] / 255;
      if (v === 0) continue;
      const bx = Math.min(19, Math.floor((x - x0 + left) * scale));
      const by = Math.min(19, Math.floor((y - y0 + top) * scale));
      box[by * 20 + bx] += v * scale * scale;
    }
  }
  let [mass, mx, my] = [0, 0, 0];
  for (let i = 0; i < 400; i++) {
    mass += box[i];
    mx += box[i] * (i % 20);
    my += box[i] * Math.floor(i / 20);
  }
  const dx = Math.round(14 - (mx / mass + 0.5));
  const dy = Math.round(14 - (my / mass + 0.5));
  const bytes = new Uint8Array(784);
  for (let i = 0; i < 400; i++) {
    const x = (i % 20) + dx;
    const y = Math.floor(i / 20) + dy;
    if (x >= 0 && x < 28 && y >= 0 && y < 28) bytes[y * 28 + x] = Math.min(255, Math.round(255 * box[i]));
  }
  return bytes;
}

function setUpPad(model) {
  const pad = $('pad');
  const ctx = pad.getContext('2d');
  const clear = () => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, pad.width, pad.height);
    $('guess').textContent = '?';
    $('bars').innerHTML = '';
  };
  clear();
  let last;
  const point = (e) => {
    const r = pad.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  };
  const update = () => {
    const bytes = padToBytes(pad);
    if (bytes === undefined) return undefined;
    const [probabilities] = classify(model, bytes, 1);
    const guess = argMax(probabilities);
    $('guess').textContent = String(guess);
    $('bars').innerHTML = probabilities
      .map((p, d) => `<div class="bar"><span>${d}</span><div style="width:${Math.round(150 * p)}px"></div><span>${(100 * p).toFixed(1)}%</span></div>`)
      .join('');
    return guess;
  };
  pad.addEventListener('mousedown', (e) => (last = point(e)));
  pad.addEventListener('mousemove', (e) => {
    if (last === undefined) return;
    const next = point(e);
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = 22;
    ctx.lineCap = ctx.lineJoin = 'round';
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...next);
    ctx.stroke();
    last = next;
  });
  window.addEventListener('mouseup', () => {
    if (last === undefined) return;
    last = undefined;
    update();
  });
  $('clear').addEventListener('click', clear);
  return update;
}

/** Draws a 7 on the pad with mouse events, as a user would. */
function demoDraw() {
  const pad = $('pad');
  const r = pad.getBoundingClientRect();
  const fire = (type, [x, y]) => (type === 'mouseup' ? window : pad).dispatchEvent(new MouseEvent(type, { clientX: r.left + x, clientY: r.top + y, bubbles: true }));
  const stroke = [[70, 60], [130, 60], [210, 60], [180, 120], [150, 180], [125, 235]];
  fire('mousedown', stroke[0]);
  for (const p of stroke.slice(1)) fire('mousemove', p);
  fire('mouseup', stroke.at(-1));
}

async function main() {
  const backend = await pickBackend();
  const model = await tf.loadLayersModel('model/model.json');
  const probabilities = await classifyTestDigits(model);
  setUpPad(model);
  let drawn;
  if (params.has('demo')) {
    demoDraw();
    drawn = Number($('guess').textContent);
  }
  $('status').textContent = `Backend: ${backend}. Model: ${model.layers.map((l) => l.getClassName()).join(' → ')}, loaded from model/model.json.`;
  if (params.has('report')) {
    await fetch('/results', { method: 'POST', body: JSON.stringify({ backend, probabilities, drawn }) });
  }
}

main().catch((error) => {
  $('status').textContent = `Error: ${error.message}`;
  if (params.has('report')) fetch('/results', { method: 'POST', body: JSON.stringify({ error: String(error.message) }) });
});
