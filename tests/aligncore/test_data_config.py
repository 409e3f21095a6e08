from __future__ import annotations

from dataclasses import dataclass

import pytest

from aligncore.config import field, parse_configs
from aligncore.data import resolve_dataset
from aligncore.training import TrainConfig


def test_resolution_order(tmp_path, monkeypatch):
    (tmp_path / "env" / "toy").mkdir(parents=True)
    (tmp_path / "explicit" / "toy").mkdir(parents=True)
    monkeypatch.setenv("ALIGNKIT_DATA", str(tmp_path / "env"))
    assert resolve_dataset("toy") == tmp_path / "env" / "toy"
    assert resolve_dataset("toy", root=tmp_path / "explicit") == tmp_path / "explicit" / "toy"
    # an explicit root is the only place searched: no silent fallback to the environment
    with pytest.raises(FileNotFoundError) as e:
        resolve_dataset("toy", root=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(e.value)


def test_missing_dataset_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNKIT_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as e:
        resolve_dataset("no-such-set")
    msg = str(e.value)
    assert str(tmp_path / "no-such-set") in msg and "ALIGNKIT_DATA" in msg and "data" in msg


def test_must_contain(tmp_path):
    (tmp_path / "set").mkdir()
    with pytest.raises(FileNotFoundError):
        resolve_dataset("set", root=tmp_path, must_contain="x.csv")
    (tmp_path / "set" / "x.csv").write_text("a\n")
    assert resolve_dataset("set", root=tmp_path, must_contain="x.csv") == tmp_path / "set"


@dataclass
class _Method:
    hidden: int = field(64, help="width")
    costs: str = field("unit", help="edit costs", choices=["unit", "graphedx"])
    dropout: float | None = field(None, help="dropout")


def test_cli_flags_and_yaml_override(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("hidden: 8\nmax_epochs: 3\ncosts: graphedx\n")
    m, t = parse_configs([_Method, TrainConfig], ["--config", str(cfg), "--hidden", "16", "--no-amp",
                                                  "--dropout", "0.5"])
    assert (m.hidden, m.costs, m.dropout) == (16, "graphedx", 0.5)  # flag beats file, file beats default
    assert (t.max_epochs, t.amp) == (3, False)
    with pytest.raises(SystemExit):
        parse_configs([_Method, TrainConfig], ["--costs", "bogus"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("hiden: 3\n")
    with pytest.raises(SystemExit):
        parse_configs([_Method, TrainConfig], ["--config", str(bad)])
    assert "unknown option(s) ['hiden']" in capsys.readouterr().err


def test_compressed_files_are_found_and_read(tmp_path):
    import gzip
    import lzma

    from aligncore.data import find_file, open_text

    (tmp_path / "set").mkdir()
    with gzip.open(tmp_path / "set" / "a.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write("x,y\n1,2\n")
    with lzma.open(tmp_path / "set" / "b.txt.xz", "wt", encoding="utf-8") as fh:
        fh.write("héllo\n")
    assert resolve_dataset("set", root=tmp_path, must_contain="a.csv") == tmp_path / "set"
    assert find_file(tmp_path / "set" / "a.csv").name == "a.csv.gz"
    with open_text(tmp_path / "set" / "a.csv", newline="") as fh:
        assert fh.read() == "x,y\n1,2\n"
    with open_text(tmp_path / "set" / "b.txt") as fh:
        assert fh.read() == "héllo\n"
    with pytest.raises(FileNotFoundError, match="nor c.txt.xz"):
        find_file(tmp_path / "set" / "c.txt")
