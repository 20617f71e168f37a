"""`output/report.html`: one self-contained page (plots embedded as data URIs, no network)."""

from __future__ import annotations

import base64
import html
import logging

import numpy as np
import pandas as pd

from cfblend.competition import Competition
from cfblend.competition.folds import read_stamp
from cfblend.io import read_json, write_text
from cfblend.paths import Paths
from cfblend.report import plots
from cfblend.report.analysis import error_buckets, fold_models, heavy_rater_check, item_pca
from cfblend.report.similar import EMBEDDING_MEMBERS, side_by_side, similar_table
from cfblend.runs import side_info

log = logging.getLogger(__name__)

CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9rem;margin:.6rem 0}th,td{padding:.3rem .6rem;border-bottom:1px solid #eee;
text-align:right}th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}.best{background:#e8f5e9}
.lists{display:flex;gap:1.5rem;flex-wrap:wrap}.lists ol{font-size:.85rem;min-width:230px}img{max-width:100%}
.note{color:#555;font-size:.9rem}td.t{text-align:left}"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(df: pd.DataFrame, highlight_first: bool = False) -> str:
    def cell(v) -> str:
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else (f"{v:.1f}" if abs(v) >= 10 else f"{v:.4f}")
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        f'<tr{" class=best" if highlight_first and i == 0 else ""}>'
        + "".join(f"<td{' class=t' if isinstance(v, str) else ''}>{cell(v)}</td>" for v in row)
        + "</tr>" for i, row in enumerate(df.itertuples(index=False)))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _ol(title: str, names: list[str]) -> str:
    items = "".join(f"<li>{html.escape(n)}</li>" for n in names)
    return f"<div><b>{html.escape(title)}</b><ol>{items}</ol></div>"


def write_report_html(comp: Competition, paths: Paths, board: pd.DataFrame, cold: pd.DataFrame,
                      solution: pd.DataFrame, preds: pd.DataFrame, current: list[str]) -> None:
    """Assemble the page from the leaderboard and the trained artifacts (the fold models of `dot`
    and `dot_no_heavy` for the embedding sections, when `current` says they are)."""
    side = side_info(comp)
    parts = [f"<h1>{html.escape(comp.name)}</h1>",
             f'<p class="note">{comp.meta["n_train"]:,} train rows, {comp.meta["n_test"]:,} test rows '
             f'(30% Public / 70% Private), {int(read_stamp(paths).get("k", 5))}-fold CV. '
             "Sorted by Private RMSE. <i>weight</i>: weight in the blend.</p>",
             "<h2>Leaderboard</h2>", _table(board, highlight_first=True)]
    if paths.scores("blend").exists():
        b = read_json(paths.scores("blend"))
        parts.append(f'<p class="note">Blend method <b>{b["method"]}</b> (honest CV by method: '
                     + ", ".join(f"{k} {v:.4f}" for k, v in b["cv_by_method"].items()) + ").</p>")

    fold_rmse = {m: read_json(paths.scores(m))["fold_rmse"] for m in board["model"]
                 if m != "global_mean" and paths.scores(m).exists()}
    parts += ["<h2>Per-fold RMSE</h2>", _img(plots.fold_rmse_png(fold_rmse), "per-fold RMSE")]
    curves = {m: read_json(paths.scores(m)).get("learning_curves") or [] for m in fold_rmse}
    if any(curves.values()):
        parts += ["<h2>Learning curves</h2>",
                  '<p class="note">Training loss (as √loss) and the held-out fold\'s RMSE after each epoch; for '
                  "the GBM, RMSE per boosting round on its training rows and its early-stopping slice. A held-out "
                  "curve that turns up while the training curve keeps falling is over-fitting.</p>",
                  _img(plots.learning_curves_png(curves), "learning curves")]

    dots, light = ([fold_models(paths, m, side) if m in current else [] for m in ("dot", "dot_no_heavy")])
    if dots:
        pca = item_pca(dots[0], comp.train, comp.items)
        parts += ["<h2>Direction and distance of embeddings: PCA of item factors</h2>",
                  '<p class="note">The dot model of fold 0; the 50 most rated movies on the first two principal '
                  "components of their latent factors.</p>",
                  _img(plots.pca_png(pca[["pc1", "pc2"]].to_numpy(), list(pca["title"]), pca.attrs["explained"]),
                       "PCA of item embeddings")]
    near = [m for m in EMBEDDING_MEMBERS if m in current]
    if near:
        counts = comp.train["item_id"].value_counts()
        titles = comp.items.set_index("item_id")["title"]
        parts += ["<h2>Distance of embeddings: nearest movies</h2>",
                  '<p class="note">For the most rated movies, the 5 nearest by cosine similarity of the item factors '
                  f"of each member ({', '.join(near)}), computed within each fold model (and posterior sample) and "
                  "averaged. Candidates need at least 20 train ratings (fewer give noisy factors). Cells: title "
                  "(train ratings, similarity). `make similar ITEM=\"...\"` asks for any movie.</p>"]
        queries = [int(i) for i in counts.index[:4]]
        tables = similar_table(paths, comp, queries, near)
        for item in queries:
            table = side_by_side(tables[tables["query"] == item])
            parts += [f"<h3>{html.escape(str(titles.get(item, item)))} ({int(counts[item])} ratings)</h3>",
                      _table(table)]
    if dots and light:
        h = heavy_rater_check(comp.train, comp.items, dots, light)
        parts += ["<h2>Heavy raters and item bias</h2>",
                  f'<p class="note">The heaviest 1% of raters ({h["n_heavy"]} users) gave '
                  f'{h["heavy_share_of_ratings"]:.1%} of the train ratings. Movies with at least '
                  f'{h["min_count"]} ratings; item biases averaged over the fold models of <i>dot</i> and of '
                  "<i>dot_no_heavy</i> (the same folds without those users' ratings). Without them the item-bias "
                  f'ranking has Spearman correlation <b>{h["spearman"]:.3f}</b> with the full one, and '
                  f'<b>{h["top_overlap"]}/{h["top"]}</b> of the top {h["top"]} by bias stay.</p>',
                  '<div class="lists">', _ol("Top by learned item bias", h["top_by_bias"]),
                  _ol("…without the heaviest 1%", h["top_by_bias_without_heavy"]),
                  _ol("Top by mean rating", h["top_by_mean"]), _ol("Top by rating count", h["top_by_count"]),
                  "</div>", "<p>Largest rank moves among the top 50 by bias:</p>", _table(h["biggest_moves"])]
    elif dots:
        parts += ["<h2>Heavy raters and item bias</h2>",
                  '<p class="note">Train <i>dot_no_heavy</i> (`make train MODEL=dot_no_heavy`) to see this '
                  "section.</p>"]

    test = comp.test.set_index("id").loc[preds.index]
    y = solution.set_index("id")["rating"].reindex(preds.index).to_numpy()
    cols = [c for c in preds.columns if c != "global_mean"]
    inf = float("inf")
    by_user = error_buckets(comp.train, test, y, preds[cols], "user_id", [0, 20, 50, 100, 200, 400, inf])
    by_item = error_buckets(comp.train, test, y, preds[cols], "item_id", [0, 1, 10, 50, 100, 250, inf])
    parts += ["<h2>Error by user activity and item popularity</h2>",
              '<p class="note">Test RMSE by the number of train ratings of the row\'s user / item.</p>',
              _img(plots.bucket_png(by_user, "user's train ratings"), "error by user activity"),
              _table(by_user), _img(plots.bucket_png(by_item, "item's train ratings"), "error by item popularity"),
              _table(by_item), "<h2>Cold-start rows</h2>",
              '<p class="note">Test RMSE on rows whose user or item never appears in train.</p>', _table(cold)]
    imp = paths.output / "gbm_importance.png"
    if imp.exists():
        parts += ["<h2>LightGBM feature importance</h2>", _img(imp.read_bytes(), "gbm feature importance")]
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(comp.name)} report"
            f"</title><style>{CSS}</style></head><body>" + "\n".join(parts) + "</body></html>\n")
    write_text(page, paths.output / "report.html")
    log.info("report page -> %s", paths.output / "report.html")
