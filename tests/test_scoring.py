"""The scorer on known inputs and the malformed-submission refusals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cfblend.competition.scoring import SubmissionError, check_submission, rmse, score_file, score_predictions


def test_rmse_known_values():
    assert rmse([1, 2, 3], [1, 2, 3]) == 0.0
    assert rmse([0, 0], [3, 4]) == pytest.approx(math.sqrt(12.5))
    with pytest.raises(ValueError):
        rmse([1, 2], [1])


def test_public_private_split_of_the_score():
    sol = pd.DataFrame({"id": [1, 2, 3, 4], "rating": [1.0, 2.0, 3.0, 4.0],
                        "Usage": ["Public", "Private", "Private", "Public"]})
    pred = pd.DataFrame({"rating": [2.0, 2.0, 5.0, 4.0]}, index=pd.Index([4, 1, 3, 2], name="id"))
    s = score_predictions(pred, sol)  # id 1 -> 2 (err 1), id 2 -> 4 (2), id 3 -> 5 (2), id 4 -> 2 (2)
    assert s["public_rmse"] == pytest.approx(math.sqrt((1 + 4) / 2))
    assert s["private_rmse"] == pytest.approx(2.0)
    assert s["test_rmse"] == pytest.approx(math.sqrt(13 / 4))


@pytest.mark.parametrize(("frame", "message"), [
    (pd.DataFrame({"id": [1, 2], "pred": [3.0, 3.0]}), "columns must be exactly"),
    (pd.DataFrame({"id": [1, 1, 2], "rating": [3.0, 3.0, 3.0]}), "duplicate ids"),
    (pd.DataFrame({"id": [1], "rating": [3.0]}), "1 test ids missing, e.g. 2"),
    (pd.DataFrame({"id": [1, 2, 7], "rating": [3.0, 3.0, 3.0]}), "not in the test set, e.g. 7"),
    (pd.DataFrame({"id": [1, 2], "rating": [3.0, np.nan]}), "row 2: rating nan is missing"),
    (pd.DataFrame({"id": [1, 2], "rating": [3.0, "x"]}), "row 2: rating 'x'"),
    (pd.DataFrame({"id": ["a", 2], "rating": [3.0, 3.0]}), "row 1: id 'a' is not an integer"),
])
def test_malformed_submissions_are_refused(frame, message):
    with pytest.raises(SubmissionError, match=message):
        check_submission(frame, [1, 2])


def test_score_file_end_to_end(tmp_path):
    sol = pd.DataFrame({"id": [10, 11], "rating": [4.0, 2.0], "Usage": ["Public", "Private"]})
    sol.to_csv(tmp_path / "solution.csv", index=False)
    pd.DataFrame({"id": [11, 10], "rating": [2.5, 4.0]}).to_csv(tmp_path / "sub.csv", index=False)
    s = score_file(tmp_path / "sub.csv", tmp_path / "solution.csv")
    assert s["public_rmse"] == 0.0 and s["private_rmse"] == pytest.approx(0.5)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(SubmissionError, match="cannot read"):
        score_file(tmp_path / "empty.csv", tmp_path / "solution.csv")


def test_out_of_scale_predictions_are_scored_with_a_warning(tmp_path, caplog):
    sol = pd.DataFrame({"id": [10, 11], "rating": [4.0, 2.0], "Usage": ["Public", "Private"]})
    sol.to_csv(tmp_path / "solution.csv", index=False)
    pd.DataFrame({"id": [10, 11], "rating": [7.0, 1e9]}).to_csv(tmp_path / "sub.csv", index=False)
    s = score_file(tmp_path / "sub.csv", tmp_path / "solution.csv", (1.0, 5.0))
    assert s["public_rmse"] == pytest.approx(3.0)
    assert "2 predictions outside the rating scale [1, 5], e.g. row 1: 7" in caplog.text


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, "id,rating\n1,4\n".encode("utf-16")])
def test_binary_or_utf16_file_is_refused_naming_the_file(tmp_path, content):
    pd.DataFrame({"id": [1], "rating": [4.0], "Usage": ["Public"]}).to_csv(tmp_path / "solution.csv", index=False)
    (tmp_path / "weird.csv").write_bytes(content)
    with pytest.raises(SubmissionError, match=r"weird\.csv: cannot read|weird\.csv: columns must be"):
        score_file(tmp_path / "weird.csv", tmp_path / "solution.csv")
