#!/usr/bin/env python3
"""Runs torch.nn layers for the layers' oracle test (packages/core/src/layers/oracle.test.ts).

Used in the venv made by torch-venv.sh. Reads {"cases": [case]} on stdin, where a case is
{"id", "cls": a torch.nn class name, "kwargs": its keyword arguments, "train": bool,
"layout": "NCHW" | "NHWC", "input": T, "dy": T, "params": {state_dict name: T}} and T is
{"data": [...], "shape": [...], "dtype": "float32" | "int32"}.

Each module is built, given the case's parameters with load_state_dict(strict=True), put in train
or eval mode and run once in float64 on the input; (output * dy).sum() is back-propagated. An "NHWC"
input (and dy) is permuted to channels-first before the module and the results permuted back.
Prints {"versions": {...}, "results": {id: {"output", "gradInput" (null for integer input),
"grads": {parameter name: values}, "buffers": {buffer name: values after the call}}}}, values flat.
"""

import json
import sys

import torch


def tensor(t):
    dtype = torch.float64 if t["dtype"] == "float32" else torch.int64
    return torch.tensor(t["data"], dtype=dtype).reshape(t["shape"])


def flat(t):
    return t.detach().reshape(-1).tolist()


def run(case):
    module = getattr(torch.nn, case["cls"])(**case["kwargs"]).double()
    module.load_state_dict({k: tensor(v) for k, v in case["params"].items()}, strict=True)
    module.train(case["train"])
    x = tensor(case["input"])
    floating = x.is_floating_point()
    if floating:
        x.requires_grad_(True)
    nhwc = case.get("layout") == "NHWC"
    y = module(x.permute(0, 3, 1, 2) if nhwc else x)
    if nhwc:
        y = y.permute(0, 2, 3, 1)
    (y * tensor(case["dy"])).sum().backward()
    return {
        "output": flat(y),
        "gradInput": flat(x.grad) if floating else None,
        "grads": {name: flat(p.grad) if p.grad is not None else None for name, p in module.named_parameters()},
        "buffers": {name: flat(b) for name, b in module.named_buffers()},
    }


def main():
    cases = json.load(sys.stdin)["cases"]
    results = {c["id"]: run(c) for c in cases}
    json.dump({"versions": {"torch": torch.__version__}, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
