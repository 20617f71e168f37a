"""The allocator setting of training processes: freed blocks of tens of MB are reused, not faulted in again,
(at large sets only those of a mini-batch step, unless the member's steps need larger ones); every fold job
applies it."""

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
ok = True
for setting in sys.argv[1].split(","):  # n_ratings:large_blocks, applied in turn
    n_ratings, large = setting.split(":")
    ok = reuse_freed_memory(int(n_ratings), large == "1") and ok

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

n = int(sys.argv[2])
a = torch.ones(n); del a
before = faults()
for _ in range(10):
    a = torch.ones(n); del a
print(ok, faults() - before)
"""


def _rounds(n_ratings: int, mb: int, *settings: tuple[int, bool]) -> tuple[bool, int]:
    """Whether the setting took, and the page faults of ten rounds of an `mb` MB array, after the setting for
    `n_ratings` (or, given `settings`, each (n_ratings, large_blocks) in turn) in a fresh process."""
    steps = ",".join(f"{n}:{int(large)}" for n, large in (settings or [(n_ratings, False)]))
    out = subprocess.run([sys.executable, "-c", ROUNDS.format(src=SRC), steps, str(mb * 250_000)],
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


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_a_member_with_large_step_blocks_reuses_them_on_a_large_set_and_the_next_member_returns_them():
    pages = 64_000_000 // 4096
    ok, faults = _rounds(0, 64, (MAX_ROWS + 1, True))
    assert ok
    assert faults < 2 * pages
    # one process fitting members in turn (a Dask worker): the one after such a member gets the large-set ceiling back
    ok, faults = _rounds(0, 64, (MAX_ROWS + 1, False), (MAX_ROWS + 1, True), (MAX_ROWS + 1, False))
    assert ok
    assert faults > 5 * pages


def test_every_fold_job_applies_it_with_the_competition_size_and_the_members_blocks(comp_env, monkeypatch):
    from cfblend.models import model_class
    from cfblend.runs import cv

    comp, folds, _ = comp_env
    calls = []
    monkeypatch.setattr(cv, "reuse_freed_memory", lambda n, large=False: calls.append((n, large)) or True)
    cv.fit_fold("biases", comp, cv.side_info(comp), folds, 0)
    cv.fit_fold("autorec", comp, cv.side_info(comp), folds, 0, {"epochs": 1, "hidden": 4})
    assert calls == [(len(comp.train), False), (len(comp.train), True)]
    assert model_class("autorec").large_step_blocks and not model_class("nn").large_step_blocks

