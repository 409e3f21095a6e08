from __future__ import annotations

import csv
import json
import re

import pytest

from kgalign.align import main


def test_cli_end_to_end_with_http_llm(tiny_openea, tmp_path, scripted_server):
    # the scripted LLM answers with the candidate whose name equals the source name plus " b"
    def policy(prompt):
        src = re.search(r"Source entity: ([^;\n]+)", prompt).group(1).strip()
        for num, name in re.findall(r"^(\d+)\. ([^;\n]+)", prompt, flags=re.M):
            if name.strip() == f"{src} b":
                return num
        return "none"
    srv = scripted_server(policy)
    out = tmp_path / "run"
    m = main(["--data", str(tiny_openea), "--pair", "openea", "--candidates", "5", "--llm", srv.url,
              "--model", "scripted", "--rounds", "3", "--limit", "4", "--out-dir", str(out),
              "--max-epochs", "3", "--batch-size", "4", "--proj-dim", "16", "--w-name", "0",
              "--inference", "cosine", "--no-progress", "--threads", "1"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(m, default=str))
    assert metrics["num_test"] == 6 and metrics["embedding_subset"]["n"] == 4
    llm = metrics["llm"]
    # the oracle knows the answer whenever the gold entity is among the 5 candidates
    assert llm["hits@1"] == metrics["embedding_subset"]["hits@5"]
    assert llm["llm_entities"] == 4 and llm["llm_calls"] <= 12
    rows = list(csv.DictReader(open(out / "alignment.tsv"), delimiter="\t"))
    assert len(rows) == 4 and set(rows[0]) >= {"source_uri", "predicted_uri", "gold_uri", "llm_choice"}
    assert (out / "llm_cache.sqlite").exists() and (out / "metrics.jsonl").exists()
    n_req = len(srv.requests)
    main(["--data", str(tiny_openea), "--pair", "openea", "--candidates", "5", "--llm", srv.url,
          "--model", "scripted", "--rounds", "3", "--limit", "4", "--out-dir", str(out), "--max-epochs", "3",
          "--batch-size", "4", "--proj-dim", "16", "--w-name", "0", "--inference", "cosine",
          "--no-progress", "--threads", "1"])
    assert len(srv.requests) == n_req  # the re-run is served by the cache


def test_cli_rejects_bad_llm(tiny_openea, tmp_path):
    with pytest.raises(ValueError, match="llm must be 'local' or an http"):
        main(["--data", str(tiny_openea), "--pair", "openea", "--llm", "gpt", "--out-dir", str(tmp_path),
              "--max-epochs", "1", "--batch-size", "4", "--proj-dim", "8", "--no-progress"])


def test_cli_calibrates_the_selective_threshold_on_links_after_the_limit(tiny_openea, tmp_path, scripted_server):
    # a model that always answers "1": it never changes the base ranking, so it never helps and the
    # calibrated threshold must send nothing to it
    srv = scripted_server(lambda prompt: "1")
    out = tmp_path / "cal"
    m = main(["--data", str(tiny_openea), "--pair", "openea", "--candidates", "5", "--llm", srv.url,
              "--model", "scripted", "--rounds", "1", "--limit", "3", "--calibrate", "3", "--out-dir", str(out),
              "--max-epochs", "3", "--batch-size", "4", "--proj-dim", "16", "--w-name", "0",
              "--inference", "cosine", "--no-progress", "--threads", "1"])
    cal = m["calibration"]
    assert cal["links"] == [3, 6] and cal["sent"] == 0 and cal["hits@1"] == cal["hits@1_base"]
    assert len(srv.requests) == 3  # only the calibration links were asked
    assert m["llm"]["llm_entities"] == 0 and m["llm"]["hits@1"] == m["embedding_subset"]["hits@1"]
    with pytest.raises(SystemExit, match="--calibrate needs test links beyond --limit"):
        main(["--data", str(tiny_openea), "--pair", "openea", "--candidates", "5", "--llm", srv.url,
              "--model", "scripted", "--limit", "6", "--calibrate", "2", "--out-dir", str(tmp_path / "c2"),
              "--max-epochs", "1", "--batch-size", "4", "--proj-dim", "8", "--no-progress", "--threads", "1"])
