"""bench.unitable's rapid_table-only section: it shows the peer's rows from a run and none of that run's arms."""

import json
from pathlib import Path

import pytest
import yaml

from bench.unitable import peer_section

CONFIG = Path(__file__).parents[2] / "configs/unitable/laptop.yaml"


def _run(tmp_path: Path, results: dict) -> Path:
    cfg = yaml.safe_load(CONFIG.read_text())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "results.json").write_text(json.dumps({"results": results, "kv": {}, "times": {}}))
    return tmp_path


def _scores(tables: int, ts: float, t: float, s: float) -> dict:
    return {"tables": tables, "teds_struct": ts, "teds": t, "seconds_per_table": s}


def test_the_peer_section_holds_rapid_tables_rows_and_not_the_cut_arms(tmp_path):
    run = _run(tmp_path, {"pretrained": {"synthetic": _scores(200, 0.11, 0.05, 0.02)},
                          "rapid_table": {"synthetic": _scores(200, 0.7179, 0.65, 0.585),
                                          "pubtabnet": _scores(20, 0.9642, 0.8469, 2.036)}})
    text = peer_section(run)
    rows = [line for line in text.splitlines() if line.startswith("| rapid_table")]
    assert rows == ["| rapid_table | synthetic | 200 | 0.7179 | 0.6500 | - | - | 0.585 |",
                    "| rapid_table | pubtabnet | 20 | 0.9642 | 0.8469 | - | - | 2.036 |"]
    assert "| pretrained" not in text and "0.1100" not in text
    assert "200 of the 200 synthetic test tables (seed 0" in text


def test_a_run_without_rapid_table_says_so(tmp_path):
    run = _run(tmp_path, {"pretrained": {"synthetic": _scores(200, 0.7, 0.3, 0.02)}})
    with pytest.raises(SystemExit, match="no rapid_table results"):
        peer_section(run)
