from __future__ import annotations

import networkx as nx
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from aligncore.ot import emd, fused_gromov_wasserstein, sinkhorn


def test_emd_uniform_square_is_assignment():
    g = torch.Generator().manual_seed(0)
    C = torch.rand(2, 6, 6, generator=g, dtype=torch.float64)
    P = emd(C)
    for k in range(2):
        r, c = linear_sum_assignment(C[k].numpy())
        assert float((P[k] * C[k]).sum()) == pytest.approx(float(C[k].numpy()[r, c].sum()) / 6)
        assert torch.allclose(P[k].sum(1), torch.full((6,), 1 / 6, dtype=torch.float64))


def test_sinkhorn_cost_decreases_to_emd():
    g = torch.Generator().manual_seed(1)
    C = torch.rand(5, 7, generator=g, dtype=torch.float64)
    exact = float((emd(C) * C).sum())
    costs = [float(sinkhorn(C, eps=e, tol=1e-10, max_iter=100000).cost) for e in (0.5, 0.1, 0.01)]
    assert costs[0] >= costs[1] >= costs[2] >= exact - 1e-9
    assert costs[2] - exact < 0.01 * 2 * torch.log(torch.tensor(35.0)).item()


def test_fgw_recovers_graph_isomorphism():
    G = nx.cycle_graph(5)
    G.add_edge(0, 2)
    perm = [3, 0, 4, 1, 2]
    H = nx.relabel_nodes(G, {i: perm[i] for i in range(5)})
    A = torch.tensor(nx.to_numpy_array(G, nodelist=range(5)))
    B = torch.tensor(nx.to_numpy_array(H, nodelist=range(5)))
    deg_g = A.sum(1)
    deg_h = B.sum(1)
    M = (deg_g[:, None] - deg_h[None, :]).abs()
    P, value = fused_gromov_wasserstein(M, A, B, alpha=0.5)
    assert float(value) == pytest.approx(0.0, abs=1e-8)
    for i in range(5):  # the coupling is the isomorphism or an automorphism-equivalent one
        j = int(P[i].argmax())
        assert deg_g[i] == deg_h[j]
    assert torch.allclose(P.sum(0), torch.full((5,), 0.2, dtype=torch.float64), atol=1e-8)
