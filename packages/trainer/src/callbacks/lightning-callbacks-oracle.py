"""Lightning 2.6 with one of its callbacks on the tiny regression problem the test sends on stdin
(data, initial weights, which callback); prints the global step after each epoch and the final
weights as JSON. Used by gradient-accumulation-scheduler.test.ts and swa.test.ts."""
import json
import logging
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import torch
import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, GradientAccumulationScheduler, StochasticWeightAveraging
from torch.utils.data import DataLoader, TensorDataset

torch.set_num_threads(1)
spec = json.load(sys.stdin)
fin, fout = spec["features"], spec["outputs"]
x = torch.tensor(spec["x"], dtype=torch.float32).reshape(-1, fin)
y = torch.tensor(spec["y"], dtype=torch.float32).reshape(-1, fout)


class Net(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(fin, fout)
        with torch.no_grad():
            # Flint's Linear holds weight as [in, out]; torch's as [out, in].
            self.fc.weight.copy_(torch.tensor(spec["weights"]["fc.weight"]).reshape(fin, fout).T)
            self.fc.bias.copy_(torch.tensor(spec["weights"]["fc.bias"]))

    def training_step(self, batch, batch_idx):
        xb, yb = batch
        return torch.nn.functional.mse_loss(self.fc(xb), yb)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=spec["lr"])


class Steps(Callback):
    def __init__(self):
        self.steps = []
        self.lrs = []

    def on_train_epoch_start(self, trainer, module):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_epoch_end(self, trainer, module):
        self.steps.append(trainer.global_step)


cb = spec["callback"]
if cb["name"] == "GradientAccumulationScheduler":
    callback = GradientAccumulationScheduler(scheduling={int(k): v for k, v in cb["scheduling"].items()})
else:
    callback = StochasticWeightAveraging(swa_lrs=cb["swaLrs"], swa_epoch_start=cb["swaEpochStart"], annealing_epochs=cb["annealingEpochs"], annealing_strategy=cb["annealingStrategy"])
steps = Steps()
model = Net()
with tempfile.TemporaryDirectory() as root:
    trainer = pl.Trainer(
        default_root_dir=root, max_epochs=spec["maxEpochs"], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
        num_sanity_val_steps=0, callbacks=[callback, steps],
    )
    trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=spec["batchSize"], shuffle=False))
print(json.dumps({
    "steps": steps.steps, "lrs": steps.lrs,
    "weights": {"fc.weight": model.fc.weight.detach().T.reshape(-1).tolist(), "fc.bias": model.fc.bias.detach().tolist()},
}))
