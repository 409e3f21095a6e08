"""A small real regression task shared by the training-loop tests (also run under torchrun)."""

from __future__ import annotations

import json
import os
import sys

import torch
from torch import nn
from torch.utils.data import TensorDataset

from aligncore.training import TrainConfig, fit


def make_task(seed: int = 0, n: int = 96):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    w = torch.randn(5, 1, generator=g)
    y = x @ w + 0.1 * torch.randn(n, 1, generator=g)
    return TensorDataset(x[:64], y[:64]), (x[64:], y[64:])


class Net(nn.Module):
    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 1))

    def forward(self, x):
        return self.body(x)


def loss_fn(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def run(out_dir: str, *, max_epochs: int = 6, batch_size: int = 8, max_steps=None, ckpt_steps=None,
        grad_accum: int = 1, patience=None, dropout: float = 0.1, kill_after: int | None = None, lr: float = 1e-2):
    torch.manual_seed(123)
    model = Net(dropout)
    calls = [0]

    def loss(m, batch):
        calls[0] += 1
        if kill_after is not None and calls[0] > kill_after:
            os._exit(17)  # an abrupt kill: no cleanup, no exception handling
        return loss_fn(m, batch)

    train, (vx, vy) = make_task()

    def evaluate(m):
        return {"val_loss": float(nn.functional.mse_loss(m(vx), vy))}

    cfg = TrainConfig(out_dir=out_dir, max_epochs=max_epochs, batch_size=batch_size, lr=lr, progress=False,
                      device="cpu",  # exact-equality tests: same device and kernels in every run
                      max_steps=max_steps, checkpoint_every_steps=ckpt_steps, grad_accum=grad_accum,
                      patience=patience, restore_best=False)
    return model, fit(model, train, loss_fn=loss, config=cfg, evaluate=evaluate)


if __name__ == "__main__":  # python _train_task.py OUT BATCH_SIZE DROPOUT [KILL_AFTER]  (also under torchrun)
    out, bs, dropout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    kill = int(sys.argv[4]) if len(sys.argv) > 4 else None
    model, res = run(out, batch_size=bs, dropout=dropout, kill_after=kill, ckpt_steps=3)
    if int(os.environ.get("RANK", "0")) == 0:
        with open(f"{out}/result.json", "w") as fh:
            json.dump({"final": res.final_metrics, "steps": res.steps,
                       "weights": [p.detach().flatten().tolist() for p in model.parameters()]}, fh)
