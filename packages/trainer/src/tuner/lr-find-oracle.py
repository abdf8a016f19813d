"""Lightning's learning-rate finder on the problem lr-find-oracle.test.ts sends on stdin (data, initial
weights, options); prints the curve and the suggestion as JSON on stdout."""
import json
import logging
import os
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import torch
import lightning.pytorch as pl
from lightning.pytorch.tuner import Tuner
from torch.utils.data import DataLoader, TensorDataset

torch.set_num_threads(1)
spec = json.load(sys.stdin)
features, hidden, classes = spec["features"], spec["hidden"], spec["classes"]
x = torch.tensor(spec["x"], dtype=torch.float32).reshape(-1, features)
y = torch.tensor(spec["y"], dtype=torch.int64)


class Net(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.lr = 0.1
        self.fc1 = torch.nn.Linear(features, hidden)
        self.fc2 = torch.nn.Linear(hidden, classes)
        w = spec["weights"]
        with torch.no_grad():
            # Flint's Linear holds weight as [in, out]; torch's as [out, in].
            self.fc1.weight.copy_(torch.tensor(w["fc1.weight"]).reshape(features, hidden).T)
            self.fc1.bias.copy_(torch.tensor(w["fc1.bias"]))
            self.fc2.weight.copy_(torch.tensor(w["fc2.weight"]).reshape(hidden, classes).T)
            self.fc2.bias.copy_(torch.tensor(w["fc2.bias"]))

    def training_step(self, batch, batch_idx):
        xb, yb = batch
        return torch.nn.functional.cross_entropy(self.fc2(torch.relu(self.fc1(xb))), yb)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


model = Net()
with tempfile.TemporaryDirectory() as root:
    trainer = pl.Trainer(
        default_root_dir=root, max_epochs=10, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
    )
    loader = DataLoader(TensorDataset(x, y), batch_size=spec["batchSize"], shuffle=False)
    finder = Tuner(trainer).lr_find(model, train_dataloaders=loader, num_training=spec["numTraining"], min_lr=spec["minLr"], max_lr=spec["maxLr"], mode=spec["mode"])
print(json.dumps({
    "versions": {"torch": torch.__version__, "lightning": pl.__version__},
    "lr": finder.results["lr"], "loss": finder.results["loss"], "suggestion": finder.suggestion(), "modelLr": model.lr,
}))
