"""The dot-product model (`model`), its trainers (`numba_trainer` on the CPU, `torch_trainer`
for CUDA and any optimiser) and what they share (`tables`)."""

from cfblend.models.dot.model import DotConfig, DotModel, DotNet

__all__ = ["DotConfig", "DotModel", "DotNet"]
