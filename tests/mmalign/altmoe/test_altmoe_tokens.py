"""Token-level sources: packed token states, per-token routing pooled before the heads, batches and retrieval."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmalign.altmoe.align import TOKENS, AltAligner, PairDataset, evaluate_retrieval
from mmalign.altmoe.baselines import LinearProjection, mlp_connector
from mmalign.altmoe.config import AltMoEConfig, AltMoETrainConfig
from mmalign.altmoe.connector import AltMoEConnector, TokenBatch
from mmalign.altmoe.data import (
    PairSet,
    TokenStates,
    load_pairs,
    movielens_pairs,
    neighbour_tokens,
    split_indices,
)
from mmalign.altmoe.schedule import AlternatingSchedule, all_directions
from mmalign.altmoe.train import train_altmoe


def _padded(lengths: list[int], d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths_t = torch.tensor(lengths)
    states = torch.randn(len(lengths), max(lengths), d, generator=g)
    states[torch.arange(max(lengths)) >= lengths_t.unsqueeze(1)] = 0.0
    return states, lengths_t


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=12), d=st.integers(1, 5), seed=st.integers(0, 999),
       data=st.data())
def test_token_states_pack_gather_and_pool_like_the_padded_loops(lengths, d, seed, data):
    states, lens = _padded(lengths, d, seed)
    ts = TokenStates.from_padded(states, lens)
    assert len(ts) == len(lengths) and ts.dim == d and ts.lengths.tolist() == lengths
    rows = data.draw(st.lists(st.integers(0, len(lengths) - 1), min_size=1, max_size=8))
    b = ts.batch(torch.tensor(rows))
    assert b.n == len(rows) and b.values.dtype == torch.float32
    # the tokens of batch object j are, in order, the real tokens of object rows[j] (repeats allowed)
    expect = torch.cat([states[r, :lengths[r]] for r in rows])
    torch.testing.assert_close(b.values, expect)
    assert b.segment.tolist() == [j for j, r in enumerate(rows) for _ in range(lengths[r])]
    ref = np.stack([states[i, :n].double().numpy().mean(0) for i, n in enumerate(lengths)])
    np.testing.assert_allclose(ts.pooled(chunk=3).double().numpy(), ref, atol=1e-6)
    shift, scale = torch.randn(d), torch.rand(d) + 0.5
    np.testing.assert_allclose(ts.affine(shift, scale, chunk=5).pooled().double().numpy(),
                               (ref - shift.double().numpy()) / scale.double().numpy(), atol=1e-5)


def test_token_states_reject_bad_offsets():
    with pytest.raises(ValueError, match="every object needs a token"):
        TokenStates(torch.zeros(3, 2), torch.tensor([0, 2, 2, 3]))
    with pytest.raises(ValueError, match="offsets"):
        TokenStates(torch.zeros(3, 2), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="offsets"):
        TokenStates(torch.zeros(3, 2), torch.tensor([1, 3]))


def _single_token_batch(x: torch.Tensor) -> TokenBatch:
    return TokenBatch(x, torch.arange(x.shape[0]), x.shape[0])


@pytest.mark.parametrize("multi_gate", [False, True])
def test_one_token_per_object_is_the_pooled_input(multi_gate):
    """Objects of a single token: the token path computes exactly what the (N, d) path does."""
    torch.manual_seed(0)
    con = AltMoEConnector([6, 4], latent=8, hidden=8, n_experts=4, top_k=2, multi_gate=multi_gate).eval()
    x = torch.randn(7, 6)
    a, b = con(x, 0, 1), con(_single_token_batch(x), 0, 1)
    torch.testing.assert_close(a.query, b.query)
    torch.testing.assert_close(a.pred, b.pred)
    torch.testing.assert_close(a.aux_loss, b.aux_loss)


def test_tokens_are_routed_one_by_one_and_pooled_before_the_heads():
    """Each token chooses its own experts; an object's output is the heads of the mean of its tokens' hidden
    states (so the mean of the per-token heads), whatever the order of its tokens and whatever else is in the
    batch."""
    torch.manual_seed(1)
    con = AltMoEConnector([5, 3], latent=8, hidden=8, n_experts=4, top_k=2).eval()
    ts = TokenStates.from_padded(*_padded([3, 1, 4], 5, seed=2))
    b = ts.batch(torch.arange(3))
    out = con(b, 0, 1)
    assert out.query.shape == (3, 8) and out.pred.shape == (3, 3)
    assert out.experts.shape == (8, 2)  # one routing decision per token
    per_token = con(b.values, 0, 1)  # every token as its own object
    for j in range(3):
        m = b.segment == j
        torch.testing.assert_close(out.query[j], per_token.query[m].mean(0), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(out.pred[j], per_token.pred[m].mean(0), atol=1e-6, rtol=1e-5)
        alone = con(ts.batch(torch.tensor([j])), 0, 1)
        torch.testing.assert_close(alone.query[0], out.query[j], atol=1e-6, rtol=1e-5)
    perm = torch.randperm(b.values.shape[0], generator=torch.Generator().manual_seed(0))
    shuffled = TokenBatch(b.values[perm], b.segment[perm], 3)
    torch.testing.assert_close(con(shuffled, 0, 1).query, out.query, atol=1e-6, rtol=1e-5)


def test_linear_and_mlp_baselines_take_tokens():
    torch.manual_seed(0)
    ts = TokenStates.from_padded(*_padded([2, 5, 1], 6, seed=3))
    b = ts.batch(torch.arange(3))
    lin = LinearProjection([6, 4], latent=8)
    torch.testing.assert_close(lin(b, 0, 1).query, lin(ts.pooled(), 0, 1).query)
    mlp = mlp_connector([6, 4], latent=8, hidden=4, top_k=2).eval()
    assert mlp(b, 0, 1).query.shape == (3, 8)
    with pytest.raises(ValueError, match="TokenBatch"):
        lin(TokenBatch(torch.zeros(3, 5), torch.arange(3), 3), 0, 1)


def _token_pairs(n: int = 400, d: int = 6, seed: int = 0, *, offset: bool = True) -> PairSet:
    r"""Object i has two tokens c_i + z_i and c_i - z_i; its other modality is (z_i * z_i) W + noise. Without
    ``offset`` (c = 0) the tokens' mean is 0 for every object, so only a connector that reads the tokens one by
    one can retrieve across."""
    g = torch.Generator().manual_seed(seed)
    c, z = torch.randn(n, d, generator=g) * offset, torch.randn(n, d, generator=g)
    w = torch.randn(d, 8, generator=g)
    states = torch.stack([c + z, c - z], dim=1)
    ts = TokenStates.from_padded(states, torch.full((n,), 2))
    other = (z * z) @ w + 0.01 * torch.randn(n, 8, generator=g)
    tr, va, te = split_indices(n, 0.15, 0.25, seed=seed)
    return PairSet("tokens", {"a": ts.pooled(), "b": other}, [str(i) for i in range(n)], tr, va, te, {}, {"a": ts})


def test_pairset_checks_and_standardises_token_states():
    p = _token_pairs(60)
    s = p.standardised()
    torch.testing.assert_close(s.tokens["a"].pooled(), s.modalities["a"], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="token states"):
        PairSet("bad", p.modalities, p.ids, p.train, p.val, p.test, {}, {"b": p.tokens["a"]})
    with pytest.raises(ValueError, match="token states"):
        PairSet("bad", p.modalities, p.ids[:-1] + ["x"], p.train, p.val, p.test, {},
                {"a": TokenStates.from_padded(torch.zeros(59, 1, 6), torch.ones(59, dtype=torch.long))})


def test_batches_carry_token_batches_and_the_aligner_reads_them():
    p = _token_pairs(50)
    ds = PairDataset(p, "train")
    batch = ds.collate([ds[i] for i in range(5)])
    tb = batch["a" + TOKENS]
    assert isinstance(tb, TokenBatch) and tb.n == 5 and tb.values.shape == (10, 6)
    torch.testing.assert_close(tb.mean(), batch["a"], atol=1e-6, rtol=1e-5)
    torch.manual_seed(0)
    con = AltMoEConnector([6, 8], latent=8, hidden=8, n_experts=3, top_k=2)
    al = AltAligner(con, ["a", "b"], AlternatingSchedule(all_directions(2)))
    seen = []
    con.register_forward_pre_hook(lambda mod, args: seen.append(type(args[0])))
    al(batch)
    al(batch)
    assert seen == [TokenBatch, torch.Tensor]  # a -> b reads the tokens, b -> a the pooled b rows


def test_retrieval_with_single_token_objects_equals_the_pooled_retrieval():
    p = _token_pairs(80)
    ones = TokenStates(p.modalities["a"], torch.arange(81))
    q = PairSet("one", p.modalities, p.ids, p.train, p.val, p.test, {}, {"a": ones})
    plain = PairSet("plain", p.modalities, p.ids, p.train, p.val, p.test)
    torch.manual_seed(0)
    con = AltMoEConnector([6, 8], latent=8, hidden=8, n_experts=3, top_k=2)
    a, b = evaluate_retrieval(con, q, batch_size=7), evaluate_retrieval(con, plain, batch_size=7)
    for d in a:
        torch.testing.assert_close(a[d].ranks, b[d].ranks)


@pytest.mark.parametrize("model", ["altmoe", "mlp"])
def test_per_token_connector_recovers_what_the_pooled_input_hides(tmp_path, model):
    torch.set_num_threads(1)
    pairs = _token_pairs(offset=False)  # the pooled rows are all 0: standardising them would divide by 0
    cfg = AltMoEConfig(model=model, experts=4, top_k=2, latent=32, hidden=32, dropout=0.0, reg_weight=0.0,
                       standardise=False)
    tcfg = AltMoETrainConfig(out_dir=str(tmp_path / model), max_epochs=30, batch_size=64, lr=3e-3,
                             progress=False, patience=None)
    out = train_altmoe(pairs, cfg, tcfg)
    assert out.test["a->b_recall@1"] > 0.5  # chance 0.01
    plain = PairSet("plain", pairs.modalities, pairs.ids, pairs.train, pairs.val, pairs.test)
    blind = train_altmoe(plain, cfg, AltMoETrainConfig(out_dir=str(tmp_path / "plain"), max_epochs=30, batch_size=64,
                                                       lr=3e-3, progress=False, patience=None))
    assert blind.test["a->b_recall@1"] < 0.1


def test_token_options_are_checked():
    with pytest.raises(ValueError, match="leave text_store out"):
        movielens_pairs(text_store="somewhere", tokens=True)
    with pytest.raises(ValueError, match="available for movielens"):
        load_pairs("synthetic", tokens=True)
    with pytest.raises(ValueError, match="structure tokens"):
        load_pairs("movielens", structure_tokens=4)
    with pytest.raises(ValueError, match="max_neighbours"):
        neighbour_tokens(torch.zeros(2, 1), np.array([[0, 1]]), [0], max_neighbours=0)


@settings(max_examples=40, deadline=None)
@given(v=st.integers(1, 9), edges=st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), max_size=30),
       k=st.integers(1, 4), seed=st.integers(0, 999), data=st.data())
def test_neighbour_tokens_pair_each_entity_with_its_highest_degree_neighbours(v, edges, k, seed, data):
    edges = [(a, b) for a, b in edges if a < v and b < v]
    rows = data.draw(st.lists(st.integers(0, v - 1), min_size=1, max_size=6))
    emb = torch.randn(v, 3, generator=torch.Generator().manual_seed(seed))
    ts = neighbour_tokens(emb, np.array(edges, dtype=np.int64).reshape(-1, 2), rows, k, dtype=torch.float32)
    # an independent reading: neighbour sets, then by degree (descending) and index
    nbrs = {i: sorted({b for a, b in edges if a == i and b != i} | {a for a, b in edges if b == i and a != i})
            for i in range(v)}
    expect, means = [], []
    for r in rows:
        chosen = sorted(nbrs[r], key=lambda j: (-len(nbrs[j]), j))[:k]
        toks = [torch.cat([emb[r], emb[j]]) for j in chosen] or [torch.cat([emb[r], torch.zeros(3)])]
        expect += toks
        means.append(torch.stack(toks).mean(0))
    assert ts.lengths.tolist() == [max(1, min(k, len(nbrs[r]))) for r in rows]
    torch.testing.assert_close(ts.values, torch.stack(expect))
    pooled = ts.pooled()
    torch.testing.assert_close(pooled, torch.stack(means))
    torch.testing.assert_close(pooled[:, :3], emb[rows])  # the entity's own embedding stays readable


def test_standardising_with_token_statistics():
    """token_stats: the training objects' tokens get mean 0 and sd 1 per column, and the rows are the mean of
    the standardised tokens; other modalities are z-scored as before."""
    p = _token_pairs(80)
    s = p.standardised(token_stats=True)
    x = s.tokens["a"].batch(p.train).values.double()
    np.testing.assert_allclose(x.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(0).numpy(), 1.0, atol=1e-4)
    torch.testing.assert_close(s.modalities["a"], s.tokens["a"].pooled())
    torch.testing.assert_close(s.modalities["b"], p.standardised().modalities["b"])
