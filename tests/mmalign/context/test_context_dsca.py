"""DSCA graphs, weights, backbone freezing, instance normalisation, shapes and causality."""

from __future__ import annotations

import math

import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmalign.context.baselines import DLinear, OFAModel, PatchTST, moving_average
from mmalign.context.config import ContextConfig
from mmalign.context.dsca import (
    CausalLMBackbone,
    DSCAModel,
    batch_edges,
    build_context_graph,
    group_normalised_weights,
    n_patches,
    patchify,
)
from mmalign.context.train import build_model, load_backbone_lm


def _expected_graph(n_patch, demo, task, s):
    """Independent construction of the DSCA layout and edges as a networkx DiGraph."""
    interval = n_patch // s
    groups, pos = [], 0
    for j in range(s):
        size = interval if j < s - 1 else n_patch - interval * (s - 1)
        groups.append(("patch", list(range(pos, pos + size))))
        pos += size
        plen = demo if j < s - 1 else task
        groups.append(("prompt", list(range(pos, pos + plen))))
        pos += plen
    g = nx.DiGraph()
    g.add_nodes_from(range(pos))
    edge_sets = []
    for k, (kind, mem) in enumerate(groups):
        if kind != "prompt":
            continue
        earlier = [u for kind2, m2 in groups[:k] if kind2 == "patch" for u in m2]
        edge_sets.append({(u, mem[0]) for u in earlier})
        if k + 1 < len(groups):
            edge_sets.append({(mem[-1], v) for v in groups[k + 1][1]})
    for es in edge_sets:
        g.add_edges_from(es)
    return pos, groups, edge_sets, g


def test_pinned_small_graph():
    # patches P0 P1 | demo D2 D3 | patches P4 P5 | task T6 T7 T8
    cg = build_context_graph(4, 2, 3, 2)
    assert cg.n_nodes == 9 and cg.n_groups == 4
    assert cg.group.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3]
    assert cg.patch_pos.tolist() == [0, 1, 4, 5]
    edges = {g: set() for g in range(3)}
    for (u, v), g in zip(cg.edge_index.t().tolist(), cg.edge_group.tolist(), strict=True):
        edges[g].add((u, v))
    assert edges == {0: {(0, 2), (1, 2)}, 1: {(3, 4), (3, 5)}, 2: {(0, 6), (1, 6), (4, 6), (5, 6)}}
    assert set(map(tuple, cg.coarse_edge_index.t().tolist())) == {(0, 1), (1, 2), (0, 3), (2, 3)}
    torch.testing.assert_close(cg.assign[:, 3], torch.tensor([0, 0, 0, 0, 0, 0, 1 / 3, 1 / 3, 1 / 3]))


@settings(max_examples=25, deadline=None)
@given(n_patch=st.integers(1, 40), demo=st.integers(1, 6), task=st.integers(1, 6), s=st.integers(1, 5))
def test_graph_matches_independent_construction(n_patch, demo, task, s):
    if s > n_patch:
        with pytest.raises(ValueError):
            build_context_graph(n_patch, demo, task, s)
        return
    cg = build_context_graph(n_patch, demo, task, s)
    n, groups, edge_sets, g = _expected_graph(n_patch, demo, task, s)
    assert cg.n_nodes == n == n_patch + (s - 1) * demo + task
    assert cg.n_groups == 2 * s
    assert cg.patch_pos.tolist() == [u for kind, m in groups if kind == "patch" for u in m]
    got = nx.DiGraph()
    got.add_nodes_from(range(cg.n_nodes))
    got.add_edges_from(map(tuple, cg.edge_index.t().tolist()))
    assert nx.utils.graphs_equal(got, g)
    # every edge group is exactly one of the expected sets
    by_group = {}
    for e, gid in zip(map(tuple, cg.edge_index.t().tolist()), cg.edge_group.tolist(), strict=True):
        by_group.setdefault(gid, set()).add(e)
    assert sorted(map(sorted, by_group.values())) == sorted(map(sorted, edge_sets))
    # edges point forward in time (the graph is a DAG consistent with causal order)
    assert bool((cg.edge_index[0] < cg.edge_index[1]).all())
    # coarse-to-fine matrix: each fine node in exactly one group, columns average their members
    assert torch.allclose(cg.assign.sum(0), torch.ones(2 * s))
    assert ((cg.assign > 0).sum(1) == 1).all()


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), bsz=st.integers(1, 3))
def test_edge_weights_normalised_per_group_float64(seed, bsz):
    cg = build_context_graph(7, 3, 2, 3)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(bsz, cg.n_nodes, 5, generator=gen, dtype=torch.float64)
    w = group_normalised_weights(x, cg.edge_index, cg.edge_group, cg.n_edge_groups)
    for b in range(bsz):
        raw = []
        for u, v in cg.edge_index.t().tolist():
            a, c = x[b, u], x[b, v]
            raw.append(1 + float(a @ c) / math.sqrt(float(a @ a) * float(c @ c)))
        for gid in range(cg.n_edge_groups):
            idx = [i for i, gg in enumerate(cg.edge_group.tolist()) if gg == gid]
            tot = sum(raw[i] for i in idx)
            for i in idx:
                assert w[b, i].item() == pytest.approx(raw[i] / tot, rel=1e-9, abs=1e-12)
    sums = torch.zeros(bsz, cg.n_edge_groups, dtype=torch.float64).index_add_(1, cg.edge_group, w)
    torch.testing.assert_close(sums, torch.ones_like(sums))


def test_batch_edges_offsets():
    e = torch.tensor([[0, 1], [1, 2]])
    assert batch_edges(e, 3, 4).tolist() == [[0, 1, 4, 5, 8, 9], [1, 2, 5, 6, 9, 10]]


def test_patchify_pads_with_last_value():
    x = torch.arange(10.0)[None]
    p = patchify(x, 4, 3)
    assert p.shape == (1, n_patches(10, 4, 3), 4) == (1, 4, 4)
    assert p[0, -1].tolist() == [9.0, 9.0, 9.0, 9.0]
    assert p[0, 0].tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-gpt2"])
def tiny_lm(request):
    return request.param, load_backbone_lm(request.param, seed=0)[0]


def _dsca(lm, **kw):
    bb = CausalLMBackbone(lm, 2)
    demo, task = bb.embed_text(torch.tensor([1, 2, 3])), bb.embed_text(torch.tensor([4, 5]))
    bb.drop_embedding_table()
    kw = {"seq_len": 48, "pred_len": 12, "coarse_dim": 32, "head_dropout": 0.0, **kw}
    return DSCAModel(bb, demo, task, **kw)


def test_freezing_rule_and_one_step(tiny_lm):
    name, lm = tiny_lm
    torch.manual_seed(0)
    model = _dsca(lm, coarse_weight=0.5)
    trainable_bb = {n for n, p in model.backbone.named_parameters() if p.requires_grad}
    for n in trainable_bb:
        assert "norm" in n or "ln" in n or n.startswith("wpe")
    if name == "tiny-gpt2":
        assert "wpe.weight" in trainable_bb  # learned position embeddings train
    else:
        assert not any("rotary" in n or "embed" in n for n in trainable_bb)  # RoPE: nothing to train
    assert any("attn" in n for n, p in model.backbone.named_parameters() if not p.requires_grad)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x = torch.randn(4, 48, 3)
    loss = ((model(x) - torch.randn(4, 12, 3)) ** 2).mean()
    loss.backward()
    opt.step()
    for n, p in model.named_parameters():
        if p.requires_grad:
            if n.startswith(("head", "patch_embed", "gnn_fine", "backbone.norm")):
                assert not torch.equal(p, before[n]), n
        else:
            assert torch.equal(p, before[n]), n
    for n in ("gnn_coarse.0.lin.weight", "coarse_to_fine.weight", "coarse_patch.weight"):
        assert not torch.equal(dict(model.named_parameters())[n], before[n]), n


def test_instance_norm_undone_at_output(tiny_lm):
    _, lm = tiny_lm
    torch.manual_seed(0)
    model = _dsca(lm).eval()
    head = model.head[-1]
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.constant_(head.bias, 0.0)
    x = torch.randn(3, 48, 4) * 5 + torch.tensor([1.0, -20.0, 3.0, 100.0])
    y = model(x)
    torch.testing.assert_close(y, x.mean(1, keepdim=True).expand(-1, 12, -1))  # zero head -> window mean
    torch.nn.init.constant_(head.bias, 1.0)  # one unit of the normalised scale -> + population std
    std = torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(model(x), (x.mean(1, keepdim=True) + std).expand(-1, 12, -1))


@pytest.mark.parametrize("seq_len,pred_len,patch,stride,segs", [(48, 12, 8, 8, 2), (64, 24, 16, 8, 3),
                                                                 (33, 5, 4, 2, 1)])
def test_shapes_all_models(tiny_lm, seq_len, pred_len, patch, stride, segs):
    name, lm = tiny_lm
    x = torch.randn(2, seq_len, 3)
    m = _dsca(lm, seq_len=seq_len, pred_len=pred_len, patch_len=patch, stride=stride, n_segments=segs,
              gnn_layers=(0, 2))
    assert m(x).shape == (2, pred_len, 3)
    assert m.graph.n_nodes == n_patches(seq_len, patch, stride) + (segs - 1) * 3 + 2
    ofa = OFAModel(CausalLMBackbone(lm, 2), seq_len=seq_len, pred_len=pred_len, patch_len=patch, stride=stride)
    assert ofa(x).shape == (2, pred_len, 3)
    assert DLinear(seq_len, pred_len).forward(x).shape == (2, pred_len, 3)
    assert PatchTST(seq_len, pred_len, patch_len=patch, stride=stride).forward(x).shape == (2, pred_len, 3)


def test_gat_variant_runs():
    lm = load_backbone_lm("tiny-llama")[0]
    m = _dsca(lm, gnn="gat")
    assert m(torch.randn(2, 48, 2)).shape == (2, 12, 2)


def test_backbone_is_causal(tiny_lm):
    _, lm = tiny_lm
    bb = CausalLMBackbone(lm, 2).eval()
    h = torch.randn(2, 10, bb.hidden_size)
    h2 = h.clone()
    h2[:, 6:] += 3.0
    with torch.no_grad():
        a, b = bb(h), bb(h2)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_build_model_from_config_has_prompt_tokens():
    cfg = ContextConfig(model="dsca", backbone="tiny-llama", seq_len=48, pred_len=12)
    m = build_model(cfg)
    n_words = len(cfg.demo_prompt.split())
    assert m.demo_prompt.shape[0] == n_words and m.task_prompt.shape[0] == len(cfg.task_prompt.split())
    assert m.backbone.n_layers == cfg.n_layers


def test_moving_average_matches_numpy_reference():
    import numpy as np

    x = torch.randn(2, 30, 3, dtype=torch.float64)
    got = moving_average(x, 5)
    xp = np.concatenate([np.repeat(x[:, :1].numpy(), 2, 1), x.numpy(), np.repeat(x[:, -1:].numpy(), 2, 1)], 1)
    want = np.stack([xp[:, t:t + 5].mean(1) for t in range(30)], 1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("model", ["dsca", "ofa"])
def test_learned_positions_start_neutral_and_train(model):
    """The optional position table of a rotary backbone: sized to the token sequence, zero at the start (the
    output equals the model without it), and trained by a step; GPT-2 keeps its own wpe and gets no table."""
    kw = {"model": model, "backbone": "tiny-llama", "seq_len": 48, "pred_len": 12, "head_dropout": 0.0}
    plain = build_model(ContextConfig(**kw), seed=3).eval()
    with_pos = build_model(ContextConfig(**kw, learned_positions=True), seed=3).eval()
    table = with_pos.backbone.pos_table
    n_tokens = with_pos.graph.n_nodes if model == "dsca" else with_pos.n_patch
    assert table.weight.shape == (n_tokens, with_pos.backbone.hidden_size) and table.weight.requires_grad
    x = torch.randn(2, 48, 3)
    torch.testing.assert_close(with_pos(x), plain(x))
    with_pos.train()
    ((with_pos(x) - torch.randn(2, 12, 3)) ** 2).mean().backward()
    assert table.weight.grad.abs().sum() > 0
    gpt2 = build_model(ContextConfig(**{**kw, "backbone": "tiny-gpt2"}, learned_positions=True), seed=3)
    assert gpt2.backbone.pos_table is None and gpt2.backbone.wpe.weight.requires_grad


@pytest.mark.parametrize("model_kind", ["dsca", "ofa"])
def test_head_dropout_on_features_or_on_predicted_values(tiny_lm, model_kind):
    _, lm = tiny_lm

    def make(on):
        torch.manual_seed(0)
        if model_kind == "dsca":
            m = _dsca(lm, head_dropout=0.5, head_dropout_on=on)
        else:
            bb = CausalLMBackbone(lm, 2)
            bb.drop_embedding_table()
            m = OFAModel(bb, seq_len=48, pred_len=12, head_dropout=0.5, head_dropout_on=on)
        torch.nn.init.zeros_(m.head[-1].weight)  # the head then predicts its bias, 1, whatever it reads
        torch.nn.init.constant_(m.head[-1].bias, 1.0)
        return m

    feats, outs = make("features"), make("outputs")
    assert feats.state_dict().keys() == outs.state_dict().keys()  # checkpoints of either placement interchange
    x = torch.randn(8, 48, 3) * 3 + 2
    mean = x.mean(1, keepdim=True).expand(-1, 12, -1)
    std = torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-5).expand(-1, 12, -1)
    for m in (feats, outs):  # evaluation: no dropout anywhere, both predict mean + 1 std
        torch.testing.assert_close(m.eval()(x), mean + std)
    torch.manual_seed(1)
    torch.testing.assert_close(feats.train()(x), mean + std)  # dropped features meet zero weights: no effect
    torch.manual_seed(1)
    y = outs.train()(x)  # dropped predictions: the normalised value 1 becomes 0 (the mean) or 1 / 0.5 = 2
    dropped = torch.isclose(y, mean, atol=1e-5)
    kept = torch.isclose(y, mean + 2 * std, atol=1e-4)
    assert bool((dropped | kept).all()) and 0.3 < dropped.float().mean() < 0.7
    with pytest.raises(ValueError, match="features' or 'outputs'"):
        make("inputs")
