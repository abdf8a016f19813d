"""One Python peer of the Flint benchmark, one configuration, in its own process (started by bench/src/run.ts).

    python bench/python/peer.py --peer torch --config mlp-s-b64 --images .../train-images-idx3-ubyte \
        --labels .../train-labels-idx1-ubyte --samples 60000 --warmup 20
    python bench/python/peer.py --peer keras --check

Peers (the shared workload: MLP-S 784-128-10 / MLP-L 784-512-512-10, ReLU, logits, softmax
cross-entropy, Adam 1e-3, no shuffling, last partial batch kept; 20 warm-up steps, then one epoch
timed as a whole):
  torch      plain PyTorch CPU loop, torch.set_num_threads(2), batches sliced from pre-built tensors
  lightning  PyTorch Lightning, minimal: logger, checkpointing, progress bar and model summary off;
             a DataLoader over a TensorDataset (batch_size, shuffle=False, num_workers=0)
  keras      Keras 3 on TensorFlow CPU, model.fit(shuffle=False, verbose=0)

Each result also carries peakRssMb (ru_maxrss), firstStepSec (from --spawned-at, the moment run.ts
spawned the process, to the first optimizer step completed) and rssAfterEpochMb (--epochs N times).

Prints one line `BENCH_RESULT {json}` (or `BENCH_OK <detail>` for --check); exit code 3 with
`BENCH_SKIP <reason>` when the peer's framework is not installed.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

SKIP_EXIT_CODE = 3
CONFIGS = {
    "mlp-s-b64": ([128], 64),
    "mlp-s-b256": ([128], 256),
    "mlp-l-b64": ([512, 512], 64),
    "mlp-l-b256": ([512, 512], 256),
}
LEARNING_RATE = 1e-3


class Skip(Exception):
    pass


# Memory and start-up figures (as bench/src/memory.ts for the JavaScript peers): time from the
# process's spawn (--spawned-at, ms since the epoch, given by run.ts; else the process's start time
# from /proc/self/stat) to the first optimizer step completed, peak RSS (ru_maxrss), RSS per epoch.
MB = 2**20
SPAWNED_AT = None
FIRST_STEP_AT = None
EPOCH_RSS = []


def process_start_ms():
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    start_ticks = int(fields[19])  # field 22, starttime, in clock ticks since boot
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return (time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")) * 1000


def mark_step():
    global FIRST_STEP_AT
    if FIRST_STEP_AT is None:
        FIRST_STEP_AT = time.time() * 1000


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def mark_epoch_end():
    EPOCH_RSS.append(rss_mb())


def memory_figures():
    start = SPAWNED_AT if SPAWNED_AT is not None else process_start_ms()
    return dict(
        peakRssMb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB,
        firstStepSec=None if FIRST_STEP_AT is None else (FIRST_STEP_AT - start) / 1000,
        rssAfterEpochMb=list(EPOCH_RSS),
    )


def read_idx(images_path, labels_path, limit):
    """The IDX files as float32 pixels in [0, 1] (n, 784) and int64 labels (n,)."""
    import numpy as np

    with open(images_path, "rb") as f:
        raw = f.read()
    magic, count, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (0, 4, 8, 12))
    if magic != 2051 or rows * cols != 784 or len(raw) != 16 + count * rows * cols:
        raise SystemExit(f"peer.py: {images_path} is not a 28x28 IDX images file (magic {magic}, {len(raw)} bytes)")
    with open(labels_path, "rb") as f:
        lraw = f.read()
    lmagic, lcount = (int.from_bytes(lraw[i : i + 4], "big") for i in (0, 4))
    if lmagic != 2049 or lcount != count or len(lraw) != 8 + lcount:
        raise SystemExit(f"peer.py: {labels_path} is not an IDX labels file of {count} labels (magic {lmagic}, count {lcount})")
    n = min(limit, count)
    x = np.frombuffer(raw, dtype=np.uint8, count=n * 784, offset=16).reshape(n, 784).astype(np.float32)
    x /= np.float32(255)  # in place: one float copy of the data set, not two at once
    y = np.frombuffer(lraw, dtype=np.uint8, count=n, offset=8).astype(np.int64)
    return x, y


def import_torch():
    try:
        import torch
    except ImportError as e:
        raise Skip(f"PyTorch is not installed in this Python ({sys.executable}): {e}")
    torch.set_num_threads(2)
    return torch


def torch_mlp(torch, hidden):
    layers = []
    width = 784
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)


def run_torch(args, hidden, bs, x_np, y_np):
    torch = import_torch()
    torch.manual_seed(0)
    x = torch.from_numpy(x_np)
    y = torch.from_numpy(y_np)
    n = x.shape[0]
    batches = math.ceil(n / bs)
    model = torch_mlp(torch, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step(i):
        start = (i % batches) * bs
        xb = x[start : start + bs]
        yb = y[start : start + bs]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    for i in range(args.warmup):
        step(i)
        mark_step()
    t0 = time.perf_counter()
    loss = None
    for e in range(args.epochs):
        for i in range(batches):
            loss = step(i)
            mark_step()
        if e + 1 < args.epochs:
            mark_epoch_end()
    final = float(loss.item())
    seconds = time.perf_counter() - t0
    mark_epoch_end()
    return seconds, batches * args.epochs, final, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def run_lightning(args, hidden, bs, x_np, y_np):
    torch = import_torch()
    try:
        import lightning as L
    except ImportError as e:
        raise Skip(f"Lightning is not installed in this Python ({sys.executable}): {e}")
    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)

    class Mlp(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch_mlp(torch, hidden)
            self.loss_fn = torch.nn.CrossEntropyLoss()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            loss = self.loss_fn(self(xb), yb)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LEARNING_RATE)

    x = torch.from_numpy(x_np)
    y = torch.from_numpy(y_np)
    loader = DataLoader(TensorDataset(x, y), batch_size=bs, shuffle=False, num_workers=0)
    minimal = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    class MemoryProbe(L.Callback):
        def __init__(self, timed):
            self.timed = timed

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            mark_step()

        def on_train_epoch_end(self, trainer, pl_module):
            if self.timed:
                mark_epoch_end()

    model = Mlp()
    batches = len(loader)
    if args.warmup > 0:
        L.Trainer(max_steps=args.warmup, max_epochs=math.ceil(args.warmup / batches), callbacks=[MemoryProbe(False)], **minimal).fit(model, loader)
    trainer = L.Trainer(max_epochs=args.epochs, callbacks=[MemoryProbe(True)], **minimal)
    t0 = time.perf_counter()
    trainer.fit(model, loader)
    seconds = time.perf_counter() - t0
    final = float(trainer.callback_metrics.get("train_loss", torch.tensor(float("nan"))))
    return seconds, int(trainer.global_step), final, f"lightning {L.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def import_keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
    except ImportError as e:
        raise Skip(f"Keras 3 / TensorFlow is not installed in this Python ({sys.executable}): {e}")
    return keras, tf


def run_keras(args, hidden, bs, x_np, y_np):
    keras, tf = import_keras()
    keras.utils.set_random_seed(0)
    layers = [keras.Input(shape=(784,))]
    layers += [keras.layers.Dense(h, activation="relu") for h in hidden]
    layers.append(keras.layers.Dense(10))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    n = x_np.shape[0]
    warm = min(n, args.warmup * bs)
    warm_epochs = math.ceil(args.warmup / math.ceil(warm / bs))
    class MemoryProbe(keras.callbacks.Callback):
        def __init__(self, timed):
            super().__init__()
            self.timed = timed

        def on_train_batch_end(self, batch, logs=None):
            mark_step()

        def on_epoch_end(self, epoch, logs=None):
            if self.timed:
                mark_epoch_end()

    if args.warmup > 0:
        model.fit(x_np[:warm], y_np[:warm], batch_size=bs, epochs=warm_epochs, shuffle=False, verbose=0, callbacks=[MemoryProbe(False)])
    t0 = time.perf_counter()
    history = model.fit(x_np, y_np, batch_size=bs, epochs=args.epochs, shuffle=False, verbose=0, callbacks=[MemoryProbe(True)])
    seconds = time.perf_counter() - t0
    final = float(history.history["loss"][-1])
    return seconds, math.ceil(n / bs) * args.epochs, final, f"keras {keras.__version__}, tensorflow {tf.__version__}"


RUNNERS = {"torch": run_torch, "lightning": run_lightning, "keras": run_keras}


def check(peer):
    if peer == "torch":
        torch = import_torch()
        return f"torch {torch.__version__}"
    if peer == "lightning":
        torch = import_torch()
        try:
            import lightning as L
        except ImportError as e:
            raise Skip(f"Lightning is not installed in this Python ({sys.executable}): {e}")
        return f"lightning {L.__version__}, torch {torch.__version__}"
    keras, tf = import_keras()
    return f"keras {keras.__version__}, tensorflow {tf.__version__}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--peer", required=True, choices=sorted(RUNNERS))
    p.add_argument("--config", choices=sorted(CONFIGS))
    p.add_argument("--images")
    p.add_argument("--labels")
    p.add_argument("--samples", type=int, default=60000)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--check", action="store_true")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--spawned-at", type=float, dest="spawned_at")
    args = p.parse_args()
    global SPAWNED_AT
    SPAWNED_AT = args.spawned_at
    if args.epochs < 1:
        p.error(f"--epochs must be an integer >= 1 (received {args.epochs})")
    try:
        if args.check:
            print(f"BENCH_OK {check(args.peer)}", flush=True)
            return
        if not (args.config and args.images and args.labels):
            p.error("--config, --images and --labels are required unless --check")
        if args.config not in CONFIGS:
            raise Skip(f"{args.config} is run by the Flint Trainer and tfjs-layers only")
        hidden, bs = CONFIGS[args.config]
        x, y = read_idx(args.images, args.labels, args.samples)
        seconds, steps, final, detail = RUNNERS[args.peer](args, hidden, bs, x, y)
    except Skip as e:
        print(f"BENCH_SKIP {e}", flush=True)
        sys.exit(SKIP_EXIT_CODE)
    n = x.shape[0]
    result = dict(
        peer=args.peer,
        backend="python",
        config=args.config,
        samples=n,
        steps=steps,
        warmupSteps=args.warmup,
        epochs=args.epochs,
        seconds=seconds,
        samplesPerSec=n * args.epochs / seconds,
        finalLoss=final,
        detail=detail,
        **memory_figures(),
    )
    print(f"BENCH_RESULT {json.dumps(result)}", flush=True)


if __name__ == "__main__":
    main()
