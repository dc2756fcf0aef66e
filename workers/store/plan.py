"""The restarts a study plans, written beside its study.yaml so that read-only commands need not validate it.

    <storage>/<study>/restarts.json   {"study_yaml_sha256": <hex>, "study": <name>,
                                       "columns": ["run_key", "config_key", "dataset", "model", "seed"],
                                       "restarts": [[...], ...]}

`submit` and `resume` write it from the validated spec right after study.yaml. It is derived data, never
an input: `read_plan` returns it only while the study.yaml beside it is byte for byte the text it was
derived from (the hash); otherwise (an older store, an edited study.yaml) the caller validates the spec.
Validating costs the pydantic import and the expansion (~0.1 s); reading this file costs ~1 ms per
thousand restarts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from workers.store.layout import join_uri, read_study_text, read_study_yaml, read_text, write_text

PLAN_FILE = "restarts.json"
COLUMNS = ("run_key", "config_key", "dataset", "model", "seed")


@dataclass(frozen=True)
class PlannedRestart:
    """One restart as the spec expands it: its keys, its (dataset, model) cell and its seed."""

    run_key: str
    config_key: str
    dataset: str
    model: str
    seed: int


@dataclass(frozen=True)
class Plan:
    study: str
    restarts: tuple[PlannedRestart, ...]


def study_yaml_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_plan(study_uri: str, study_yaml_text: str, study: str, restarts: Iterable[PlannedRestart]) -> None:
    """Write `restarts.json` for the study.yaml whose text is `study_yaml_text` (atomically)."""
    doc = {"study_yaml_sha256": study_yaml_sha256(study_yaml_text), "study": study, "columns": list(COLUMNS),
           "restarts": [[getattr(r, c) for c in COLUMNS] for r in restarts]}
    write_text(join_uri(study_uri, PLAN_FILE), json.dumps(doc, separators=(",", ":")))


def read_plan(study_uri: str) -> Plan | None:
    """The study's planned restarts, or None when there is no plan or it was not derived from the
    study.yaml now in the folder (then validate the spec instead)."""
    text = read_text(join_uri(study_uri, PLAN_FILE))
    spec = read_study_text(study_uri)
    if text is None or spec is None:
        return None
    try:
        doc = json.loads(text)
        if doc.get("study_yaml_sha256") != study_yaml_sha256(spec) or tuple(doc.get("columns", ())) != COLUMNS:
            return None
        restarts = tuple(PlannedRestart(str(k), str(c), str(d), str(m), int(s)) for k, c, d, m, s in doc["restarts"])
        return Plan(str(doc["study"]), restarts)
    except (ValueError, KeyError, TypeError):  # a torn or foreign file: derived data, so fall back
        return None


def stored_study_name(study_uri: str) -> str | None:
    """The name of the study a folder holds (from its plan when current, else from study.yaml; None
    without a study.yaml)."""
    plan = read_plan(study_uri)
    if plan is not None:
        return plan.study
    name = (read_study_yaml(study_uri) or {}).get("study")
    return None if name is None else str(name)
