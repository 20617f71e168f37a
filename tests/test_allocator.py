"""The allocator setting of training processes: freed blocks of tens of MB are reused, not faulted in again,
(at large sets only those of a mini-batch step); every fold job applies it."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from cfblend.runs.allocator import MAX_ROWS

SRC = str(Path(__file__).resolve().parents[1] / "src")

# A fresh process (the setting is process-wide and cannot be undone): the page faults of ten
# allocate-and-free rounds of a 64 MB tensor (torch, like the
# members' step temporaries; numpy asks for huge pages, which hides the cost), after one warm-up round.
ROUNDS = """
import resource, sys
import torch
sys.path.insert(0, {src!r})
from cfblend.runs.allocator import reuse_freed_memory
n_ratings = int(sys.argv[1])
ok = reuse_freed_memory(n_ratings)

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

n = int(sys.argv[2])
a = torch.ones(n); del a
before = faults()
for _ in range(10):
    a = torch.ones(n); del a
print(ok, faults() - before)
"""


def _rounds(n_ratings: int, mb: int) -> tuple[bool, int]:
    """Whether the setting took, and the page faults of ten rounds of an `mb` MB array."""
    out = subprocess.run([sys.executable, "-c", ROUNDS.format(src=SRC), str(n_ratings), str(mb * 250_000)],
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_a_freed_block_is_reused_for_a_small_set_and_returned_for_a_large_one():
    pages = 64_000_000 // 4096  # one 64 MB array
    ok, faults = _rounds(1_000_000, 64)
    assert ok
    assert faults < 2 * pages  # reused: at most one more array's pages faulted in, not ten
    ok, faults = _rounds(MAX_ROWS + 1, 64)  # over LARGE_LIMIT: every round maps and faults the array in again
    assert ok
    assert faults > 5 * pages


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_a_large_set_still_reuses_the_blocks_of_a_mini_batch_step():
    pages = 16_000_000 // 4096  # one 16 MB array: a step temporary of nn at batch 8192
    ok, faults = _rounds(MAX_ROWS + 1, 16)
    assert ok
    assert faults < 2 * pages


def test_every_fold_job_applies_it_with_the_competition_size(comp_env, monkeypatch):
    from cfblend.runs import cv

    comp, folds, _ = comp_env
    calls = []
    monkeypatch.setattr(cv, "reuse_freed_memory", lambda n: calls.append(n) or True)
    cv.fit_fold("biases", comp, cv.side_info(comp), folds, 0)
    assert calls == [len(comp.train)]

