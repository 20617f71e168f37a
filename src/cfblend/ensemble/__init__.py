"""Stage 5: the blend of the members' out-of-fold predictions (`blend`, pure) and `submission.csv`
(`run`, which reads the predictions and writes)."""

from cfblend.ensemble.blend import BlendConfig, BlendResult, blend
from cfblend.ensemble.run import load_predictions, run_blend

__all__ = ["BlendConfig", "BlendResult", "blend", "load_predictions", "run_blend"]
