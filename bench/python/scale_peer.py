"""The PyTorch side of `pnpm bench --scale` (started by bench/src/scale.ts), one measurement per process.

    python bench/python/scale_peer.py memory --images ... --labels ... --samples 600000 --hidden 128 --batch 64
    python bench/python/scale_peer.py stream --file /tmp/stream.rec --hidden 128 --batch 64 [--workers 1]

memory: a plain PyTorch loop (as peer.py's torch peer) over an epoch of `samples` samples; sample i is
        MNIST training image i % 60000, gathered per batch from the 60,000 pre-built tensors (the
        Flint side does the same through a TensorDataset subset).
stream: one epoch over a Flint record file (format in packages/core/src/data/record-file.ts) through
        torch's IterableDataset + DataLoader, Lightning's answer for data bigger than memory: the
        dataset reads chunks of records with numpy and yields batches; `workers` DataLoader worker
        processes (default 1) read ahead while the main process trains.

Prints `SCALE_RESULT {json}` with seconds, samples/s and peak RSS (this process and its workers).
"""

import argparse
import json
import math
import os
import resource
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer import LEARNING_RATE, import_torch, read_idx, torch_mlp  # noqa: E402

MAGIC = b"FLINTREC"


def peak_rss_bytes():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return own, children


def read_header(path):
    with open(path, "rb") as f:
        prefix = f.read(24)
        if len(prefix) < 24 or prefix[:8] != MAGIC:
            raise SystemExit(f"scale_peer.py: {path} is not a Flint record file")
        version, header_len, count = struct.unpack("<IIQ", prefix[8:24])
        header = json.loads(f.read(header_len).decode("utf-8"))
    fields = header["fields"]
    names = [f["name"] for f in fields]
    if names != ["x", "y"] or fields[0]["dtype"] != "float32" or fields[1]["dtype"] != "int32":
        raise SystemExit(f"scale_peer.py: {path} needs fields x float32 [784], y int32 [] (has {fields})")
    return 24 + header_len, count, header["recordBytes"]


def train_loop(torch, hidden, batches, warmup_batches):
    model = torch_mlp(torch, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    for xb, yb in warmup_batches:
        step(xb, yb)
    t0 = time.perf_counter()
    loss = None
    steps = 0
    for xb, yb in batches():
        loss = step(xb, yb)
        steps += 1
    final = float(loss.item())
    return time.perf_counter() - t0, steps, final


def run_memory(args):
    torch = import_torch()
    torch.manual_seed(0)
    x_np, y_np = read_idx(args.images, args.labels, 60000)
    x = torch.from_numpy(x_np)
    y = torch.from_numpy(y_np)
    base = x.shape[0]
    n, bs = args.samples, args.batch

    def batches():
        for start in range(0, n, bs):
            idx = torch.arange(start, min(n, start + bs)) % base
            yield x.index_select(0, idx), y.index_select(0, idx)

    warm = [(x[i * bs : (i + 1) * bs], y[i * bs : (i + 1) * bs]) for i in range(args.warmup)]
    seconds, steps, final = train_loop(torch, [args.hidden], batches, warm)
    return seconds, steps, final, n, f"torch {torch.__version__}, {torch.get_num_threads()} threads, in memory"


def run_stream(args):
    torch = import_torch()
    torch.manual_seed(0)
    import numpy as np
    from torch.utils.data import DataLoader, IterableDataset

    offset, count, record_bytes = read_header(args.file)
    bs = args.batch
    path = args.file
    record = np.dtype([("x", "<f4", (784,)), ("y", "<i4")])
    if record.itemsize != record_bytes:
        raise SystemExit(f"scale_peer.py: records of {record_bytes} bytes, expected {record.itemsize}")

    class RecordStream(IterableDataset):
        """Batches read front to back in chunks of `chunk` records (one chunk in memory per worker)."""

        def __init__(self, chunk):
            self.chunk = chunk

        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            workers = 1 if info is None else info.num_workers
            wid = 0 if info is None else info.id
            # Worker w reads every workers-th chunk (chunks are whole batches, so batches stay whole).
            chunks = range(0, count, self.chunk)
            with open(path, "rb") as f:
                for k, start in enumerate(chunks):
                    if k % workers != wid:
                        continue
                    n = min(self.chunk, count - start)
                    f.seek(offset + start * record_bytes)
                    arr = np.fromfile(f, dtype=record, count=n)
                    xs = torch.from_numpy(np.ascontiguousarray(arr["x"]))
                    ys = torch.from_numpy(arr["y"].astype(np.int64))
                    for b in range(0, n, bs):
                        yield xs[b : b + bs], ys[b : b + bs]

    chunk = max(bs, (args.chunk // bs) * bs)
    loader = DataLoader(RecordStream(chunk), batch_size=None, num_workers=args.workers, prefetch_factor=2 if args.workers > 0 else None)
    warm_iter = iter(DataLoader(RecordStream(chunk), batch_size=None, num_workers=0))
    warm = [next(warm_iter) for _ in range(min(args.warmup, math.ceil(count / bs)))]
    del warm_iter
    seconds, steps, final = train_loop(torch, [args.hidden], lambda: iter(loader), warm)
    return seconds, steps, final, count, f"torch {torch.__version__}, {torch.get_num_threads()} threads, IterableDataset + DataLoader(num_workers={args.workers}), chunks of {chunk} records"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["memory", "stream", "check"])
    p.add_argument("--images")
    p.add_argument("--labels")
    p.add_argument("--file")
    p.add_argument("--samples", type=int, default=60000)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--chunk", type=int, default=4096)
    args = p.parse_args()
    if args.mode == "check":
        torch = import_torch()
        print(f"SCALE_OK torch {torch.__version__}")
        return
    seconds, steps, final, samples, detail = run_memory(args) if args.mode == "memory" else run_stream(args)
    own, children = peak_rss_bytes()
    print(
        "SCALE_RESULT "
        + json.dumps(
            {
                "seconds": seconds,
                "steps": steps,
                "samples": samples,
                "samplesPerSec": samples / seconds,
                "finalLoss": final,
                "peakRss": own,
                "peakRssWorkers": children,
                "detail": detail,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
