"""Preference files (errors name file and line), the verifiable arithmetic set, tokenisation and batching."""

from __future__ import annotations

import json

import pytest
import torch

from llmalign.data import (
    D2OCollator,
    D2ODataset,
    PairCollator,
    PreferenceDataset,
    PreferenceExample,
    PreferenceFormatError,
    SampledNegative,
    TokenizedPair,
    arithmetic_answer,
    arithmetic_preferences,
    arithmetic_reward,
    extract_answer,
    read_preferences,
    tokenize_pairs,
    write_preferences,
)


def test_roundtrip_and_meta(tmp_path):
    ex = [PreferenceExample("p1", "c1", "r1", {"answer": 3}), PreferenceExample("p2", "c2", "r2")]
    path = write_preferences(tmp_path / "a.jsonl", ex)
    back = read_preferences(path)
    assert back == ex


@pytest.mark.parametrize("line, what", [
    ('{"prompt": "p", "chosen": "c"', "not valid JSON"),
    ('["p", "c", "r"]', "expected a JSON object"),
    ('{"prompt": "p", "chosen": "c"}', "missing field(s) ['rejected']"),
    ('{"prompt": "p", "chosen": 3, "rejected": "r"}', "'chosen' must be a string"),
    ('{"prompt": "  ", "chosen": "c", "rejected": "r"}', "'prompt' is empty"),
])
def test_malformed_rows_name_file_and_line(tmp_path, line, what):
    good = json.dumps({"prompt": "p", "chosen": "c", "rejected": "r"})
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(PreferenceFormatError) as e:
        read_preferences(path)
    assert f"{path}:3:" in str(e.value)
    assert what in str(e.value)


def test_negative_only_rows_and_missing_file(tmp_path):
    path = tmp_path / "neg.jsonl"
    path.write_text(json.dumps({"prompt": "p", "rejected": "r"}) + "\n")
    with pytest.raises(PreferenceFormatError, match="chosen"):
        read_preferences(path)
    (ex,) = read_preferences(path, require_chosen=False)
    assert ex.chosen is None and ex.rejected == "r"
    with pytest.raises(FileNotFoundError):
        read_preferences(tmp_path / "nope.jsonl")


def test_arithmetic_set_is_verifiable():
    data = arithmetic_preferences(300, seed=3)
    assert len({e.prompt for e in data}) == 300
    for e in data:
        a, op, b = e.prompt.split()[2][:-1].partition("+") if "+" in e.prompt else e.prompt.split()[2][:-1].partition("-")
        truth = int(a) + int(b) if op == "+" else int(a) - int(b)
        assert truth >= 0 and e.meta["answer"] == truth == arithmetic_answer(e.prompt)
        assert arithmetic_reward(e.prompt, e.chosen) == 1.0
        assert arithmetic_reward(e.prompt, e.rejected) == 0.0
    assert arithmetic_preferences(5, seed=3) == data[:5]
    with pytest.raises(ValueError, match="distinct"):
        arithmetic_preferences(10, max_operand=3, ops="+")


def test_extract_answer():
    assert extract_answer("83") == 83
    assert extract_answer("64 + 27 = 91") == 91
    assert extract_answer("\nThe answer is 1,234.\nNext line 5") == 1234
    assert extract_answer("no number") is None
    assert extract_answer("") is None


def test_tokenize_and_collate(smol_tokenizer):
    tok = smol_tokenizer
    ex = arithmetic_preferences(3, seed=0)
    pairs = tokenize_pairs(tok, ex)
    for p, e in zip(pairs, ex, strict=True):
        assert p.chosen_ids[-1] == tok.eos_token_id and p.rejected_ids[-1] == tok.eos_token_id
        assert tok.decode(p.chosen_ids[:-1]) == e.chosen
        assert e.prompt in tok.decode(p.prompt_ids)
    ds = PreferenceDataset(pairs, ref_logps=torch.tensor([[-1.0, -2.0], [-3.0, -4.0], [-5.0, -6.0]]))
    for side in ("left", "right"):
        batch = PairCollator(tok.pad_token_id, side)([ds[0], ds[2]])
        assert batch["input_ids"].shape[0] == 4
        lens = [len(pairs[0].chosen_ids), len(pairs[2].chosen_ids), len(pairs[0].rejected_ids), len(pairs[2].rejected_ids)]
        assert batch["completion_mask"].sum(1).tolist() == lens
        assert (batch["completion_mask"] <= batch["attention_mask"]).all()
        assert batch["ref_chosen"].tolist() == [-1.0, -5.0] and batch["ref_rejected"].tolist() == [-2.0, -6.0]
        row = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
        assert row == pairs[0].prompt_ids + pairs[0].chosen_ids
    with pytest.raises(ValueError, match="padding_side"):
        PairCollator(0, "middle")


def test_d2o_collate_samples_then_negatives_and_extra_columns():
    items = [SampledNegative([1, 2], [9], [[3], [4, 5]]), SampledNegative([6], [8, 8], [[7, 7, 7], [2]])]
    ds = D2ODataset(items, torch.tensor([[-1.0, -2.0], [-3.0, -4.0]]), torch.tensor([-5.0, -6.0]))
    for side in ("left", "right"):
        batch = D2OCollator(0, side)([ds[0], ds[1]])
        rows = [r[m.bool()].tolist() for r, m in zip(batch["input_ids"], batch["attention_mask"], strict=True)]
        # the K samples of each prompt, prompt by prompt, then the B negatives
        assert rows == [[1, 2, 3], [1, 2, 4, 5], [6, 7, 7, 7], [6, 2], [1, 2, 9], [6, 8, 8]]
        assert batch["completion_mask"].sum(1).tolist() == [1, 2, 3, 1, 1, 2]
        assert batch["ref_samples"].tolist() == [[-1.0, -2.0], [-3.0, -4.0]]
        assert batch["ref_rejected"].tolist() == [-5.0, -6.0] and batch["index"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="same number K"):
        D2ODataset([items[0], SampledNegative([1], [2], [[3]])], torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        D2ODataset(items, torch.zeros(2, 3), torch.zeros(2))
    # per-example columns of a pair dataset (PoFT's aligned scores) are batched like the reference log-probs
    pairs = PreferenceDataset([TokenizedPair([1], [2], [3]), TokenizedPair([4, 5], [6], [7, 8])], columns={"aligned": torch.tensor([[-1.0], [-2.0]])})
    batch = PairCollator(0)([pairs[1], pairs[0]])
    assert batch["aligned"].tolist() == [[-2.0], [-1.0]]
    with pytest.raises(ValueError, match="column 'aligned' has 1 rows"):
        PreferenceDataset([TokenizedPair([1], [2], [3]), TokenizedPair([4, 5], [6], [7, 8])], columns={"aligned": torch.zeros(1, 1)})


def test_tokenize_negatives_only(smol_tokenizer):
    ex = [PreferenceExample("What is 2+2?", None, "5")]
    with pytest.raises(ValueError, match="no chosen"):
        tokenize_pairs(smol_tokenizer, ex)
    (p,) = tokenize_pairs(smol_tokenizer, ex, require_chosen=False)
    assert p.chosen_ids == [] and p.rejected_ids[-1] == smol_tokenizer.eos_token_id
