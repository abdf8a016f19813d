"""PyTorch's side of Flint's safetensors test (run by packages/trainer/src/export.test.ts).

  python safetensors-peer.py predict FILE        reads {"inputs": [[...], ...]} on stdin, builds the
      nn.Sequential named in FILE's metadata ('flint.torch'), loads FILE with load_state_dict(strict=True)
      and prints {"outputs": ...} of the module in eval mode.
  python safetensors-peer.py write FILE CODE SEED  builds the nn.Sequential CODE with torch.manual_seed(SEED),
      saves its state_dict to FILE with safetensors, reads {"inputs": ...} on stdin and prints {"outputs": ...}.
"""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn


def outputs(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(inputs, dtype=torch.float32)).tolist()


def main():
    command, file = sys.argv[1], sys.argv[2]
    inputs = json.load(sys.stdin)["inputs"]
    if command == "predict":
        with safe_open(file, "pt") as f:
            code = f.metadata()["flint.torch"]
        model = eval(code, {"nn": nn})
        model.load_state_dict(load_file(file), strict=True)
    elif command == "write":
        torch.manual_seed(int(sys.argv[4]))
        model = eval(sys.argv[3], {"nn": nn})
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, file)
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps({"outputs": outputs(model, inputs)}))


if __name__ == "__main__":
    main()
