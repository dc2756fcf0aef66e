"""Every study file in studies/ expands to the run keys it had before the objective registry
(tests/fixtures/study_run_keys.json: per dataset/model cell, the count and a hash of the sorted keys).

A cell may differ only where what it trains changed on purpose: the regulariser convention scales the
regulariser of some objectives on the synthetic sets (`RestartConfig.regularizer_scale` != 1), and those
restarts must then have new keys, so old rows are never mixed with new ones.
"""

from __future__ import annotations

import collections
import hashlib
import json
from pathlib import Path

import pytest

from sweep.spec import load_study

ROOT = Path(__file__).resolve().parent.parent
BEFORE = json.loads((ROOT / "tests" / "fixtures" / "study_run_keys.json").read_text())
STUDIES = sorted((ROOT / "studies").glob("*.yaml"))


def _digest(keys: list[str]) -> dict[str, object]:
    return {"n": len(keys), "sha256": hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]}


def test_no_study_file_of_the_fixture_is_gone() -> None:
    assert set(BEFORE) <= {p.name for p in STUDIES}  # files added since have no earlier keys to keep


@pytest.mark.parametrize("path", [p for p in STUDIES if p.name in BEFORE], ids=lambda p: p.name)
def test_run_keys_unchanged_except_where_training_changed(path: Path) -> None:
    study = load_study(path, planned=True)
    keys: dict[str, list[str]] = collections.defaultdict(list)
    rescaled: dict[str, set[bool]] = collections.defaultdict(set)
    for r in study.restarts:
        cell = f"{r.config.dataset}/{r.config.model}"
        keys[cell].append(r.run_key)
        rescaled[cell].add(r.config.regularizer_scale != 1.0)
    before = BEFORE[path.name]
    for cell in sorted(before):  # cells a study file gained since (new datasets) have no earlier keys
        now = _digest(keys[cell]) if cell in keys else None
        if rescaled.get(cell) == {True}:
            assert now != before.get(cell), f"{path.name} {cell}: trains differently but kept its old keys"
        else:
            assert now == before.get(cell), f"{path.name} {cell}: run keys changed"
