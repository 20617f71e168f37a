"""cfblend: MovieLens rating prediction run as a Kaggle-style competition."""

__version__ = "0.1.0"
