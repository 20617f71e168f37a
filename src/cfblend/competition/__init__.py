"""Stage 2: a dataset published as a Kaggle-style competition (`competition`), its splits
(`splits`), the cross-validation folds and the output folder's stamp (`folds`), and the scorer
(`scoring`), the only code besides the report that reads the hidden solution."""

from cfblend.competition.competition import Competition, competition_name, make_competition

__all__ = ["Competition", "competition_name", "make_competition"]
