"""Scores of a factorization machine whose rows are a sparse row part plus relation blocks (Rendle 2013),
one posterior sample at a time, compiled: what `bfm` predicts with.

A row's features are its own sparse columns `X[r]` followed by the user-block row `U[u(r)]` and the
item-block row `I[i(r)]`, and its score is `w0 + <w, x> + 1/2 sum_f ((sum_j x_j v_jf)^2 - sum_j x_j^2 v_jf^2)`,
myFM's. The blocks' sums (`sum_j x_j w_j`, `sum_j x_j v_jf`, `sum_j x_j^2 v_jf^2`) are computed once per block
row a sample, not once per rating, and the rows then only add the three parts, each summing its factors
in a scratch of its own (which the compiler vectorises). On ml-1m's fold 0, `bfm` at rank 24 with its 195
kept samples (one thread): myFM 0.4.0's predictor took 23.2 s for the 180k held-out rows and 17.6 s for
the 100k test rows, this 5.5 s and 5.2 s, the same posterior means to 4e-15; `bfm_opu` (rank 32, a set of
cutpoints per heavy user, the expected rating computed here too) 219 and 162 ms a sample against 66 and 60.
The blocks' sums are most of what is left: 24 ms a sample, for any number of rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sps

from cfblend.models.jit import CACHE, njit, numba, prange

CHUNK = 4096  # rows a thread scores with one scratch
SQRT2 = math.sqrt(2.0)


def _block_sums_py(indptr, indices, data, rows, offset, w, V, lin, q, q2):
    """For the block rows `rows`: `lin[t]`, `q[t, f]`, `q2[t, f]` = sum over row `rows[t]`'s entries x_j of
    x_j w_j, x_j v_jf and (x_j v_jf)^2 (feature j at `offset` + its block column). A scratch as in
    `_row_scores` gained nothing here (ml-1m: about 24 ms a sample either way)."""
    k = V.shape[1]
    for t in prange(rows.shape[0]):
        r = rows[t]
        s = 0.0
        for f in range(k):
            q[t, f] = 0.0
            q2[t, f] = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            j = offset + indices[p]
            x = data[p]
            s += x * w[j]
            for f in range(k):
                v = x * V[j, f]
                q[t, f] += v
                q2[t, f] += v * v
        lin[t] = s


def _row_scores_py(w0, w, V, xptr, xind, xdat, ut, ulin, uq, uq2, it, ilin, iq, iq2, out):
    """`out[r]`: the FM score of row r, from its own sparse columns and the sums of its two block rows
    (`ut[r]`, `it[r]`: their places in the `u*` and `i*` arrays). Rows go in chunks, each with a scratch of
    its own for the per-factor sums, which the compiler vectorises (summed in `V`'s place it could not rule
    out that they overlap): 19 -> 10 ms a sample for ml-1m's 180k held-out rows at rank 24."""
    k = V.shape[1]
    n = out.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        tot = np.empty(k)
        sq = np.empty(k)
        for r in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            a = ut[r]
            b = it[r]
            s = w0 + ulin[a] + ilin[b]
            for f in range(k):
                tot[f] = uq[a, f] + iq[b, f]
                sq[f] = uq2[a, f] + iq2[b, f]
            for p in range(xptr[r], xptr[r + 1]):
                j = xind[p]
                x = xdat[p]
                s += x * w[j]
                for f in range(k):
                    v = x * V[j, f]
                    tot[f] += v
                    sq[f] += v * v
            inter = 0.0
            for f in range(k):
                inter += tot[f] * tot[f] - sq[f]
            out[r] = s + 0.5 * inter


def _add_expected_py(score, C, cut, levels, total):
    """`total[r] +=` the expected level of row r under ordered-probit cutpoints `C[cut[r]]` (increasing):
    P(level <= l) = Phi(c_l - score)."""
    m = C.shape[1]
    for r in prange(score.shape[0]):
        g = cut[r]
        below = 0.0
        e = 0.0
        for lv in range(m):
            now = 0.5 * math.erfc((score[r] - C[g, lv]) / SQRT2)
            e += levels[lv] * (now - below)
            below = now
        total[r] += e + levels[m] * (1.0 - below)


if njit is not None:
    _block_sums = njit(cache=CACHE, nogil=True, parallel=True)(_block_sums_py)
    _row_scores = njit(cache=CACHE, nogil=True, parallel=True)(_row_scores_py)
    _add_expected = njit(cache=CACHE, nogil=True, parallel=True)(_add_expected_py)
else:  # pragma: no cover - numba is in requirements.txt
    _block_sums, _row_scores, _add_expected = _block_sums_py, _row_scores_py, _add_expected_py


@contextmanager
def prediction_threads(n: int) -> Iterator[None]:
    """Score on `n` threads (at most numba's own count: 1 in a single-threaded fold process) for the block;
    each row's score is computed by one thread, so the numbers do not depend on the count."""
    if numba is None:  # pragma: no cover - numba is in requirements.txt
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


class BlockRows:
    """The rows to score: their sparse row part `X` and, per relation block (user, item), the block matrix
    and each row's block row. Rows in the same block row share one computation of its sums."""

    def __init__(self, X: sps.csr_matrix, blocks: list[tuple[np.ndarray, sps.csr_matrix]]):
        if len(blocks) != 2:
            raise ValueError(f"BlockRows: {len(blocks)} relation blocks; the scorer takes two (user, item)")
        self.X = sps.csr_matrix(X, dtype=np.float64)
        self.blocks = []
        offset = self.X.shape[1]
        for index, matrix in blocks:
            matrix = sps.csr_matrix(matrix, dtype=np.float64)
            used, where = np.unique(np.asarray(index, np.int64), return_inverse=True)
            self.blocks.append((matrix, used, where.astype(np.int64), offset))
            offset += matrix.shape[1]
        self.n_features = offset

    def __len__(self) -> int:
        return self.X.shape[0]

    def scores(self, w0: float, w: np.ndarray, V: np.ndarray) -> np.ndarray:
        """One sample's scores of the rows (`w0`, `w`: n_features, `V`: n_features x rank)."""
        w = np.ascontiguousarray(w, np.float64)
        V = np.ascontiguousarray(V, np.float64)
        if w.shape[0] != self.n_features or V.shape[0] != self.n_features:
            raise ValueError(f"BlockRows.scores: a sample of {w.shape[0]} features for rows of {self.n_features}")
        sums = []
        for matrix, used, where, offset in self.blocks:
            lin, q, q2 = np.empty(len(used)), np.empty((len(used), V.shape[1])), np.empty((len(used), V.shape[1]))
            _block_sums(matrix.indptr, matrix.indices, matrix.data, used, offset, w, V, lin, q, q2)
            sums.append((where, lin, q, q2))
        out = np.empty(len(self))
        (ut, ulin, uq, uq2), (it, ilin, iq, iq2) = sums
        _row_scores(float(w0), w, V, self.X.indptr, self.X.indices, self.X.data, ut, ulin, uq, uq2,
                    it, ilin, iq, iq2, out)
        return out


def add_expected_level(total: np.ndarray, score: np.ndarray, cutpoints: np.ndarray, cut: np.ndarray,
                       levels: np.ndarray) -> None:
    """Add to `total` each row's expected level under an ordered probit: row r's score `score[r]` and the
    increasing cutpoints `cutpoints[cut[r]]` (one fewer than `levels`), P(level <= l) = Phi(c_l - score)."""
    C = np.ascontiguousarray(cutpoints, np.float64)
    if C.ndim != 2 or C.shape[1] != len(levels) - 1:
        raise ValueError(f"add_expected_level: cutpoints of shape {C.shape} for {len(levels)} levels")
    _add_expected(np.ascontiguousarray(score, np.float64), C, np.ascontiguousarray(cut, np.int64),
                  np.ascontiguousarray(levels, np.float64), total)


__all__ = ["BlockRows", "add_expected_level", "prediction_threads"]
