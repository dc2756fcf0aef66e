"""`train.loggers`: live training curves besides the Parquet trace, each optional and installed by an extra.

    tensorboard  the trial writes event files itself (workers.curves): one series per seed and their mean,
                 every trace row and checkpoint row; `tensorboard --logdir <study>/tensorboard`
    mlflow       Ray Tune's MLflowLoggerCallback into the file store `<study>/mlruns` (no server): one MLflow
                 run per trial with what the trial reports at each checkpoint (mean loss, per-seed values)
    wandb        Ray Tune's WandbLoggerCallback in offline mode under `<study>/wandb` (`wandb sync` uploads)

Tune's automatic loggers stay off (sweep.ray_session); these are added as explicit callbacks.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from typing import Any

from sweep.preflight import PreflightError
from workers.store.layout import join_uri

LOGGERS = ("tensorboard", "mlflow", "wandb")
_MODULE = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def study_loggers(trials: Iterable[Any]) -> list[str]:
    """The loggers any of the trials (TrialSpecs) asks for, in LOGGERS order."""
    asked = {name for t in trials for name in t.loggers}
    return [name for name in LOGGERS if name in asked]


def check_loggers(loggers: Iterable[str], study_uri: str) -> None:
    """PreflightError naming the extra to install for a logger whose package is missing, or a file-based
    logger on storage that is not a local folder (before anything is scheduled)."""
    problems = []
    for name in loggers:
        if importlib.util.find_spec(_MODULE[name]) is None:
            problems.append(f"train.loggers {name}: the {_MODULE[name]} package is not installed; "
                            f"pip install 'orthosweep[{name}]'")
        elif name == "mlflow" and not _local(study_uri) and not os.environ.get("MLFLOW_TRACKING_URI"):
            problems.append(f"train.loggers mlflow: storage {study_uri} is not a local folder for the file store; "
                            "set MLFLOW_TRACKING_URI to a tracking server or folder")
    if problems:
        raise PreflightError("; ".join(problems))


def _local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def tune_callbacks(loggers: Iterable[str], study_uri: str, study_name: str) -> list[Any]:
    """Ray Tune logger callbacks for the mlflow and wandb loggers (tensorboard is written by the trials)."""
    out: list[Any] = []
    folder = os.path.abspath(study_uri.removeprefix("file://")) if _local(study_uri) else None
    for name in loggers:
        if name == "mlflow":
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            uri = os.environ.get("MLFLOW_TRACKING_URI") or "file://" + join_uri(str(folder), "mlruns")
            out.append(MLflowLoggerCallback(tracking_uri=uri, experiment_name=study_name,
                                            tags={"orthosweep_study": study_name}, save_artifact=False))
        elif name == "wandb":
            from ray.air.integrations.wandb import WandbLoggerCallback

            kw: dict[str, Any] = {"mode": os.environ.get("WANDB_MODE", "offline")}
            if folder is not None:
                kw["dir"] = join_uri(folder, "wandb")
                os.makedirs(kw["dir"], exist_ok=True)
            out.append(WandbLoggerCallback(project=study_name, group=study_name, **kw))
    return out
