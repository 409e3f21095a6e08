"""CUDA paths of aligncore (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from aligncore.ot import gumbel_sinkhorn, hungarian, sinkhorn
from aligncore.training import TrainConfig, fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("method", ["lse", "matmul"])
def test_sinkhorn_cuda_matches_cpu(method):
    g = torch.Generator().manual_seed(0)
    C = torch.rand(16, 30, 40, generator=g, dtype=torch.float64)
    ma = torch.rand(16, 30, generator=g) > 0.2
    ma[:, 0] = True
    cpu = sinkhorn(C, eps=0.1, tol=0, max_iter=200, mask_a=ma, method=method)
    gpu = sinkhorn(C.cuda(), eps=0.1, tol=0, max_iter=200, mask_a=ma.cuda(), method=method)
    assert gpu.plan.is_cuda
    assert torch.allclose(gpu.plan.cpu(), cpu.plan, atol=1e-10)
    conv = sinkhorn(C.cuda(), eps=0.1, tol=1e-8, max_iter=10000, mask_a=ma.cuda())
    assert conv.converged and bool((conv.marginal_error <= 1e-8).all())


def test_gumbel_and_hungarian_on_cuda():
    X = torch.randn(4, 6, 6, device="cuda")
    P = gumbel_sinkhorn(X, tau=0.5, n_iter=100, generator=torch.Generator(device="cuda").manual_seed(1))
    assert P.is_cuda and torch.allclose(P.sum(-1), torch.ones(4, 6, device="cuda"), atol=1e-4)
    H = hungarian(P)
    assert H.is_cuda and torch.equal(H.sum(-1).cpu(), torch.ones(4, 6))


def test_fit_on_cuda_with_bf16_autocast(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    data = torch.utils.data.TensorDataset(x[:192], y[:192])
    vx, vy = x[192:].cuda(), y[192:].cuda()

    def loss_fn(m, batch):
        return torch.nn.functional.mse_loss(m(batch[0]).float(), batch[1])

    def evaluate(m):
        return {"val_loss": float(torch.nn.functional.mse_loss(m(vx), vy))}

    res = fit(model, data, loss_fn=loss_fn, evaluate=evaluate,
              config=TrainConfig(out_dir=str(tmp_path), max_epochs=20, batch_size=32, lr=1e-2, device="cuda",
                                 amp=True, progress=False))
    assert next(model.parameters()).is_cuda
    assert res.history[-1]["val_loss"] < 0.2 * res.history[0]["val_loss"]


def test_resume_on_cuda(tmp_path, device="cuda"):
    """A checkpoint read back with map_location=cuda carries its generator states on the GPU; resuming must still
    hand them to the CPU-only setters (this raised once) and continue where the first run stopped."""
    torch.manual_seed(0)
    x = torch.randn(128, 4)
    data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))

    def loss_fn(m, batch):
        return torch.nn.functional.mse_loss(m(batch[0]), batch[1])

    cfg = {"out_dir": str(tmp_path), "batch_size": 32, "lr": 1e-2, "device": device, "progress": False}
    first = fit(torch.nn.Linear(4, 1), data, loss_fn=loss_fn, config=TrainConfig(max_epochs=1, **cfg))
    again = fit(torch.nn.Linear(4, 1), data, loss_fn=loss_fn, config=TrainConfig(max_epochs=2, resume=True, **cfg))
    assert first.epochs == 1 and again.epochs == 2
    assert again.history[0]["epoch"] == 1 and again.history[-1]["epoch"] == 2
