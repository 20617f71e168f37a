"""Getting MovieLens onto disk (`sources`) and reading it into one canonical form (`load`)."""

from cfblend.data.datasets import DATASETS, DatasetSpec, get_spec
from cfblend.data.load import Dataset, load_dataset

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "get_spec", "load_dataset"]
