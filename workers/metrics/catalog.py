"""Names of the metrics a study may request in `eval.metrics` (no heavy imports here)."""

from __future__ import annotations

# metric name -> needs generative factors (null on datasets without them)
METRICS: dict[str, bool] = {
    "dto": False,
    "c_ima": False,
    "polarized": False,
    "ds": True,
    "mig": True,
    "mig_sup": True,
    "dci": True,
    "sap": True,
    "factorvae": True,
    "betavae": True,
}
