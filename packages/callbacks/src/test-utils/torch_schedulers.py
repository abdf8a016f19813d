"""PyTorch's side of scheduler-specs.ts: builds torch schedulers from the same data, and, run as a
script, is the oracle of packages/callbacks/src/lr-schedulers.test.ts.

Script: reads {"cases": [{"name", "optimizer": "sgd"|"momentum"|"adam", "lr", "steps", "scheduler"}]}
on stdin, prints {"torch": version, "results": {name: {"lrs": [...], "momentums": [...] | null}}}:
the learning rate (and momentum / Adam's beta1) after construction and after each of `steps` steps.
"""

import json
import re
import sys
import warnings

import torch

warnings.filterwarnings("ignore")

LAMBDAS = {
    "inverse": lambda e: 1 / (1 + e),
    "warmup3": lambda e: min(1, (e + 1) / 3),
    "decay95": lambda e: 0.95,
    "wobble": lambda e: 0.9 if e % 3 == 0 else 1.05,
    "half": lambda x: 0.5**x,
}

# Flint's camelCase option -> torch's parameter, where snake_case is not enough.
NAMES = {"tMax": "T_max", "t0": "T_0", "tMult": "T_mult", "minDelta": "threshold"}


def snake(name):
    return NAMES.get(name) or re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def build(opt, spec):
    """The torch scheduler `spec` (scheduler-specs.ts's SchedulerData) describes, on `opt`."""
    kwargs = {}
    for key, value in spec.get("options", {}).items():
        if key in ("lrLambda", "scaleFn"):
            value = LAMBDAS[value]
        elif key == "schedulers":
            value = [build(opt, s) for s in value]
        elif key == "pctStart":
            value = float(value)
        kwargs[snake(key)] = value
    cls = getattr(torch.optim.lr_scheduler, spec["type"])
    if spec["type"] == "ChainedScheduler":
        return cls(kwargs.pop("schedulers"), optimizer=opt)
    return cls(opt, **kwargs)


def make_optimizer(kind, lr, params):
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if kind == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"unknown optimizer {kind}")


def momentum_of(opt):
    group = opt.param_groups[0]
    if "betas" in group:
        return group["betas"][0]
    return group.get("momentum")


def trace(case):
    params = [torch.nn.Parameter(torch.zeros(1))]
    opt = make_optimizer(case["optimizer"], case["lr"], params)
    sched = build(opt, case["scheduler"])
    lrs = [opt.param_groups[0]["lr"]]
    momentums = [momentum_of(opt)]
    for _ in range(case["steps"]):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
        momentums.append(momentum_of(opt))
    return {"lrs": lrs, "momentums": momentums}


def main():
    cases = json.load(sys.stdin)["cases"]
    results = {}
    for case in cases:
        try:
            results[case["name"]] = trace(case)
        except Exception as e:  # noqa: BLE001 - the test reports it
            results[case["name"]] = {"error": f"{type(e).__name__}: {e}"}
    json.dump({"torch": torch.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
