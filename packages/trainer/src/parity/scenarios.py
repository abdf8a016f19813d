"""The Lightning side of Flint's differential test (see parity.test.ts).

Reads a JSON payload on stdin: {"scenarios": [...], "data": {...}, "hooks": [...]} (the scenario
specs of specs.ts, the data and the hook names Flint has), runs each scenario with the real
PyTorch Lightning on CPU in this one process, and prints one JSON object: {"versions": ...,
"results": {name: observations}}. The Flint side (scenarios.ts) runs the same specs; compare.ts
compares the two.
"""

import contextlib
import io
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)
os.environ.setdefault("PYTHONWARNINGS", "ignore")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import lightning  # noqa: E402
import lightning.pytorch as L  # noqa: E402
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers.logger import Logger  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

torch.set_num_threads(1)

# The schedulers, built from the same data as Flint's side (callbacks' test-utils/scheduler-specs.ts).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "callbacks", "src", "test-utils"))
from torch_schedulers import build as build_scheduler, momentum_of  # noqa: E402


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def num(v):
    """Scripted values: numbers, or 'nan' / 'inf' / '-inf' (JSON has no NaN)."""
    return float(v) if isinstance(v, str) else v


def plain(v):
    if isinstance(v, torch.Tensor):
        v = v.item()
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def plain_dict(d):
    return {k: plain(v) for k, v in sorted(d.items())}


def stage_suffix(hook, args, kwargs):
    if hook not in ("setup", "teardown"):
        return ""
    stage = kwargs["stage"] if "stage" in kwargs else args[0]
    return f":{getattr(stage, 'value', stage)}"


class RecordingLogger(Logger):
    def __init__(self, out):
        super().__init__()
        self.out = out

    @property
    def name(self):
        return "recording"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.out.append({"step": step, "metrics": plain_dict(metrics)})


class Rec:
    """What a scenario observes, filled by the recording callback, module and logger."""

    def __init__(self):
        self.hooks = []
        self.train_batches = []
        self.validations = []
        self.sanity_batches = 0
        self.saves = []
        self.lrs = []
        self.momentums = []
        self.logs = []
        self.val_runs = 0


def recording_callback_class(hook_names, rec, record_hooks):
    def make(hook):
        def fn(self, trainer, pl_module, *args, **kwargs):
            if record_hooks:
                rec.hooks.append(f"Callback.{hook}{stage_suffix(hook, args, kwargs)}")
            if hook == "onValidationEnd" and not trainer.sanity_checking:
                rec.validations.append([trainer.current_epoch, trainer.global_step])
                rec.val_runs += 1
            # Lightning dumps a second checkpoint for last.ckpt: one save point each.
            if hook == "onSaveCheckpoint" and rec.saves[-1:] != [[trainer.current_epoch, trainer.global_step]]:
                rec.saves.append([trainer.current_epoch, trainer.global_step])
            if hook == "onBeforeOptimizerStep":
                rec.lrs.append(args[0].param_groups[0]["lr"])
                rec.momentums.append(momentum_of(args[0]))

        return fn

    attrs = {}
    for hook in hook_names:
        if hook in ("onSaveCheckpoint", "onBeforeOptimizerStep", "onValidationEnd") or record_hooks:
            attrs[snake(hook)] = make(hook)
    return type("RecordingCallback", (Callback,), attrs)


STEP_NAMES = {"trainingStep", "validationStep", "testStep", "predictStep", "configureOptimizers"}


def module_class(spec, data, rec, hook_names, module_hooks=()):
    logs = spec.get("logs")
    script = [num(v) for v in spec.get("script", [])]
    sched = spec.get("scheduler")
    raise_at = spec.get("raiseAt")
    record_hooks = spec.get("recordHooks", False)

    class M(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)
            with torch.no_grad():
                self.layer.weight.copy_(torch.tensor([data["initialWeight"]], dtype=torch.float32))
                self.layer.bias.copy_(torch.tensor(data["initialBias"], dtype=torch.float32))

        def forward(self, x):
            return self.layer(x).squeeze(-1)

        def _log(self, where, loss, batch_idx):
            for entry in logs:
                if entry["hook"] != where:
                    continue
                kind = entry.get("value", "loss")
                if kind == "loss":
                    value = loss
                elif kind == "batch":
                    value = float(batch_idx + 1)
                else:  # scripted: by global step in training, by validation run in validation
                    index = self.trainer.global_step if where == "train" else rec.val_runs
                    value = script[min(index, len(script) - 1)]
                kwargs = {snake(k): v for k, v in entry.items() if k not in ("hook", "name", "value")}
                if "reduce" in kwargs:
                    kwargs["reduce_fx"] = kwargs.pop("reduce")
                self.log(entry["name"], value, **kwargs)

        def training_step(self, batch, batch_idx):
            if record_hooks:
                rec.hooks.append("Module.trainingStep")
            rec.train_batches.append([self.trainer.current_epoch, batch_idx, self.trainer.global_step])
            if raise_at is not None and [self.trainer.current_epoch, batch_idx] == raise_at:
                raise RuntimeError("scenario: trainingStep fails here")
            x, y = batch
            loss = F.mse_loss(self(x), y)
            self._log("train", loss, batch_idx)
            return loss

        def validation_step(self, batch, batch_idx):
            if record_hooks:
                rec.hooks.append("Module.validationStep")
            if self.trainer.sanity_checking:
                rec.sanity_batches += 1
            x, y = batch
            self._log("val", F.mse_loss(self(x), y), batch_idx)

        def test_step(self, batch, batch_idx):
            if record_hooks:
                rec.hooks.append("Module.testStep")
            x, y = batch
            self._log("test", F.mse_loss(self(x), y), batch_idx)

        def predict_step(self, batch, batch_idx):
            if record_hooks:
                rec.hooks.append("Module.predictStep")
            return self(batch[0])

        if spec.get("optimizerStep") is not None:

            def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
                if record_hooks:
                    rec.hooks.append("Module.optimizerStep")
                how = spec["optimizerStep"]
                if how == "every-2nd":
                    if batch_idx % 2 == 0:
                        optimizer.step(closure=optimizer_closure)
                    else:
                        optimizer_closure()
                    return
                if how == "warmup":
                    for group in optimizer.param_groups:
                        group["lr"] = spec.get("lr", 0.1) * min(1.0, (self.trainer.global_step + 1) / 4)
                optimizer.step(closure=optimizer_closure)

        if spec.get("doubleInputs"):

            def on_before_batch_transfer(self, batch, dataloader_idx):
                if record_hooks:
                    rec.hooks.append("Module.onBeforeBatchTransfer")
                x, y = batch
                return [x * 2, y]

        if spec.get("moduleCallbacks"):

            def configure_callbacks(self):
                if record_hooks:
                    rec.hooks.append("Module.configureCallbacks")
                return [EarlyStopping(**{snake(k): v for k, v in cb.get("options", {}).items()}) for cb in spec["moduleCallbacks"]]

        def configure_optimizers(self):
            if record_hooks:
                rec.hooks.append("Module.configureOptimizers")
            if "momentum" in spec:
                opt = torch.optim.SGD(self.parameters(), lr=spec.get("lr", 0.1), momentum=spec["momentum"])
            else:
                opt = torch.optim.SGD(self.parameters(), lr=spec.get("lr", 0.1))
            if sched is None:
                return opt
            s = build_scheduler(opt, sched.get("torch", sched))
            config = {"scheduler": s}
            for key in ("interval", "frequency", "monitor", "strict"):
                if key in sched:
                    config[key] = sched[key]
            return {"optimizer": opt, "lr_scheduler": config}

    if record_hooks:
        # Module hooks that both Lightning's LightningModule and Flint have, recorded in place.
        for hook in [*hook_names, *module_hooks]:
            name = snake(hook)
            if hook in STEP_NAMES or not callable(getattr(L.LightningModule, name, None)):
                continue
            if name in M.__dict__:  # defined by the scenario, which records it itself
                continue
            original = getattr(L.LightningModule, name)

            def wrapper(self, *args, _hook=hook, _original=original, **kwargs):
                rec.hooks.append(f"Module.{_hook}{stage_suffix(_hook, args, kwargs)}")
                return _original(self, *args, **kwargs)

            setattr(M, name, wrapper)
    return M


def loader(data, key, batch_size):
    x = torch.tensor(data[key]["x"], dtype=torch.float32)
    y = torch.tensor(data[key]["y"], dtype=torch.float32)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False, num_workers=0)


def run(spec, data, hook_names, tmp, module_hooks=()):
    rec = Rec()
    out = {}
    spec.setdefault(
        "logs",
        [
            {"hook": "train", "name": "loss", "value": "loss"},
            {"hook": "val", "name": "val_loss", "value": "loss"},
            {"hook": "test", "name": "test_loss", "value": "loss"},
        ],
    )
    record_hooks = spec.get("recordHooks", False)
    module = module_class(spec, data, rec, hook_names, module_hooks)()
    callbacks = []
    checkpoint = None
    early = None
    ckpt_dir = os.path.join(tmp, spec["name"])
    for cb in spec.get("callbacks", []):
        opts = {snake(k): num(v) if k.endswith("Threshold") else v for k, v in cb.get("options", {}).items()}
        if cb["type"] == "EarlyStopping":
            early = EarlyStopping(**opts)
            callbacks.append(early)
        elif cb["type"] == "ModelCheckpoint":
            checkpoint = ModelCheckpoint(dirpath=ckpt_dir, **opts)
            callbacks.append(checkpoint)
        elif cb["type"] == "Recorder":
            callbacks.append(recording_callback_class(hook_names, rec, record_hooks)())
    if not any(cb["type"] == "Recorder" for cb in spec.get("callbacks", [])):
        callbacks.append(recording_callback_class(hook_names, rec, record_hooks)())
    kwargs = {snake(k): v for k, v in spec.get("trainer", {}).items()}
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        deterministic=True,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=checkpoint is not None,
        logger=RecordingLogger(rec.logs),
        default_root_dir=tmp,
        callbacks=callbacks,
        **kwargs,
    )
    bs = data["batchSize"]
    train = loader(data, "train", bs)
    val = loader(data, "val", bs) if spec.get("val", True) else None
    error = None
    results = []
    try:
        for action in spec.get("run", ["fit"]):
            if action == "fit":
                trainer.fit(module, train, val)
            elif action == "validate":
                results.append(plain_dict(trainer.validate(module, loader(data, "val", bs), verbose=False)[0]))
            elif action == "test":
                results.append(plain_dict(trainer.test(module, loader(data, "val", bs), verbose=False)[0]))
            elif action == "predict":
                preds = trainer.predict(module, loader(data, "val", bs))
                results.append({"batches": len(preds), "rows": sum(int(p.shape[0]) for p in preds)})
    except Exception as e:  # noqa: BLE001 - the scenario records that it raised
        error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    out["error"] = error
    out["hooks"] = rec.hooks
    out["trainBatches"] = rec.train_batches
    out["validations"] = rec.validations
    out["sanityBatches"] = rec.sanity_batches
    out["final"] = {"epoch": trainer.current_epoch, "globalStep": trainer.global_step}
    out["logs"] = rec.logs
    out["lrs"] = rec.lrs
    # Plain SGD (Flint's has no momentum): null, as Flint records it.
    out["momentums"] = rec.momentums if "momentum" in spec else [None] * len(rec.momentums)
    out["saves"] = rec.saves
    out["results"] = results
    out["callbackMetrics"] = plain_dict(trainer.callback_metrics)
    w = module.layer.weight.detach().reshape(-1).tolist() + module.layer.bias.detach().tolist()
    out["weights"] = w
    if checkpoint is not None:
        files = sorted(os.listdir(ckpt_dir)) if os.path.isdir(ckpt_dir) else []
        out["checkpoint"] = {
            "files": files,
            "best": os.path.basename(checkpoint.best_model_path) if checkpoint.best_model_path else None,
            "bestScore": plain(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None,
            "last": os.path.basename(checkpoint.last_model_path) if checkpoint.last_model_path else None,
        }
    if early is not None:
        out["earlyStopping"] = {"wait": early.wait_count, "stoppedEpoch": early.stopped_epoch}
    return out


def main():
    payload = json.load(sys.stdin)
    only = set(sys.argv[1:])
    tmp = tempfile.mkdtemp(prefix="flint-parity-")
    results = {}
    try:
        for spec in payload["scenarios"]:
            if only and spec["name"] not in only:
                continue
            L.seed_everything(0, verbose=False)
            sink = io.StringIO()
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                results[spec["name"]] = run(spec, payload["data"], payload["hooks"], tmp, payload.get("moduleHooks", []))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    json.dump({"versions": {"lightning": lightning.__version__, "torch": torch.__version__}, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
