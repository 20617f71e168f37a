"""Stage 4: cross-validated training runs. `cv` computes (OOF and test predictions, scores),
`runner` fingerprints the run and commits its artifacts, `artifacts` says which artifacts can be
trusted (manifests, staging, the checks every reader makes), `cache` lends fitted models to
models built on others (the GBM's dot models)."""

from cfblend.runs.cv import CVResult, cross_validate, side_info
from cfblend.runs.runner import fingerprint, train_cv, train_members, trained_members

__all__ = ["CVResult", "cross_validate", "fingerprint", "side_info", "train_cv", "train_members", "trained_members"]
