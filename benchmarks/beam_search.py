"""Constrained beam search of the DAS generative retriever (mmalign.das.retriever) against copying the memory per beam.

The peer is the same search with each beam decoded on its own copy of the encoder memory (``decode`` on
``repeat_interleave``-d memory: this library's implementation before session 7, and the plain way to run beam search
through ``nn.TransformerDecoder``). Ours (``GenerativeRetriever.decode_beams``) lets every beam of a history read
one copy, so the memory's keys and values are projected once per history instead of once per beam.

Same inputs for both: the Beauty test histories of the first ``--users`` users (last 20 items), LETTER's published
semantic IDs (bundled; 4 levels, a prefix trie over 12,101 items), the retriever at ``mmalign.das.retrieve``'s
default size (d_model 64, 2+2 layers, 4 heads, feed-forward 256) with seeded random weights (the search's cost
does not depend on training), batches of 256, beam 20. Median wall time over repeats; the printed ``speedup`` is
peer / ours; ``same_items`` is the share of users whose 20 retrieved items come out identical and in the same order.

    python benchmarks/beam_search.py [--users 2048] [--repeats 3]

The committed CPU rows (session 7): ``--users 1024 --repeats 3`` while two 1-thread das.py runs shared the 2-core
CPU (so the 2-thread row is oversubscribed; both paths of a row ran under the same load).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_results  # noqa: E402
from ot_sinkhorn import timed  # noqa: E402

from mmalign.das.data import leave_one_out, load  # noqa: E402
from mmalign.das.retrieve import RetrieveConfig, load_ids  # noqa: E402
from mmalign.das.retriever import GenerativeRetriever, PrefixTrie, constrained_beam_search, pad_histories  # noqa: E402


class CopiedMemory:
    """The peer: :meth:`GenerativeRetriever.decode` with the encoder memory repeated for every beam."""

    def __init__(self, model: GenerativeRetriever):
        self.model = model

    def encode(self, history, codes):
        return self.model.encode(history, codes)

    def decode_beams(self, mem, pad, prefix):
        b, nb, lvl = prefix.shape
        logits = self.model.decode(mem.repeat_interleave(nb, 0), pad.repeat_interleave(nb, 0),
                                   prefix.reshape(b * nb, lvl))
        return logits.reshape(b, nb, -1)


def search_all(model, hist, codes, trie, beam, batch):
    outs = [constrained_beam_search(model, hist[s:s + batch], codes, trie, beam=beam)
            for s in range(0, hist.shape[0], batch)]
    return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--beam", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--note", default="", help="conditions to record with the budget (e.g. other jobs running)")
    args = ap.parse_args(argv)
    cfg = RetrieveConfig()
    split = leave_one_out(load("beauty").sequences)
    ids = load_ids("letter")
    codes = torch.as_tensor(ids.codes, dtype=torch.long)
    trie = PrefixTrie(codes)
    hist_all = pad_histories([split.full[u][:-1] for u in range(args.users)], cfg.max_history)
    torch.manual_seed(0)
    model = GenerativeRetriever(trie.level_sizes, max_history=cfg.max_history, d_model=cfg.d_model,
                                n_heads=cfg.n_heads, n_layers=cfg.n_layers, dim_ff=cfg.dim_ff).eval()
    default_threads = torch.get_num_threads()
    runs = [("cpu", t) for t in sorted({1, default_threads})]
    if torch.cuda.is_available():
        runs.append(("cuda", default_threads))
    rows = []
    for device, threads in runs:
        torch.set_num_threads(threads)
        m, c, tr, hist = model.to(device), codes.to(device), trie.to(device), hist_all.to(device)
        sync = torch.cuda.synchronize if device == "cuda" else None
        peer = CopiedMemory(m)
        with torch.no_grad():
            t_ours, (items, scores) = timed(lambda: search_all(m, hist, c, tr, args.beam, args.batch_size),
                                            args.repeats, sync)
            t_peer, (items_p, scores_p) = timed(lambda: search_all(peer, hist, c, tr, args.beam, args.batch_size),
                                                args.repeats, sync)
        finite = torch.isfinite(scores) & torch.isfinite(scores_p)
        rows.append({
            "device": device, "torch_threads": threads, "users": args.users, "beam": args.beam,
            "seconds": t_ours, "peer_seconds": t_peer, "speedup": t_peer / t_ours,
            "same_items": float((items == items_p).all(1).double().mean()),
            "max_score_diff": float((scores - scores_p)[finite].abs().max()),
        })
    torch.set_num_threads(default_threads)
    cols = ["device", "torch_threads", "users", "beam", "seconds", "peer_seconds", "speedup", "same_items",
            "max_score_diff"]
    print_table(rows, cols)
    suffix = "_cuda" if torch.cuda.is_available() else ""
    path = write_results("beam_search", rows, suffix=suffix, budget=(
        f"Beauty test histories of the first {args.users} users, LETTER IDs, retriever d_model {cfg.d_model} "
        f"{cfg.n_layers}+{cfg.n_layers} layers with seeded random weights, batch {args.batch_size}, beam "
        f"{args.beam}, median of {args.repeats} repeats; peer = the same search decoding on memory copied per beam"
        + (f"; {args.note}" if args.note else "")))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
