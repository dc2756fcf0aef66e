"""cluster.yaml passes Ray's own autoscaler schema offline; a copy with a misspelt key is rejected."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parent.parent / "cluster.yaml"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_passes_ray_schema(config: dict) -> None:
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    assert head["resources"]["CPU"] == 0  # the head runs no trials
    workers = [t for name, t in types.items() if name != prepared["head_node_type"]]
    assert any(t["resources"].get("GPU", 0) >= 1 and t["min_workers"] < t["max_workers"] for t in workers)
    assert any("orthosweep" in c for c in prepared["setup_commands"])


@pytest.mark.parametrize("where", ["top", "node_type"])
def test_misspelt_key_is_rejected(config: dict, where: str) -> None:
    bad = copy.deepcopy(config)
    if where == "top":
        bad["head_start_ray_comands"] = bad.pop("head_start_ray_commands")
    else:
        worker = bad["available_node_types"]["gpu_worker"]
        worker["min_worker"] = worker.pop("min_workers")
    with pytest.raises(jsonschema.ValidationError, match="comands|min_worker"):
        validate_config(prepare_config(bad))
