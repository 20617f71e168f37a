"""The kaggle client decides who is signed in, and its printed failures are failures.

Each sign-in method the client (kaggle 2.x) accepts is set up in a temporary home, with no network:
the answer comes from the installed client itself (`sign_in` runs it in a subprocess). The push and
submit outputs are produced by the real client's command-line code with its web call replaced
(Kaggle is unreachable from the tests), then fed to the parser `make kernel-push` / `make submit` use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from cfblend.errors import KaggleError
from cfblend.kaggle.client import check_output, push_kernel, sign_in
from cfblend.kaggle.kernel import PLACEHOLDER_USER, build_kernel

pytest.importorskip("kaggle.cli", reason="the kaggle client is in requirements.txt")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty home: no Kaggle variables, no config folders."""
    for var in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)


def test_no_credentials(home):
    assert sign_in().method is None


def test_access_token_in_the_environment_or_a_file(home, monkeypatch):
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_0123456789abcdef")
    who = sign_in()
    assert (who.method, who.source, who.verified) == ("access_token", "KAGGLE_API_TOKEN", False)  # offline: unchecked
    monkeypatch.delenv("KAGGLE_API_TOKEN")
    _write(home / ".kaggle" / "access_token", "KGAT_0123456789abcdef\n")
    assert (sign_in().method, sign_in().source) == ("access_token", "access_token")


def test_legacy_key_file_environment_and_xdg_folder(home, monkeypatch):
    _write(home / ".config" / "kaggle" / "kaggle.json", json.dumps({"username": "xdg_user", "key": "k" * 32}))
    who = sign_in()  # ~/.kaggle absent: the client reads ~/.config/kaggle on Linux
    assert (who.method, who.username, who.verified) == ("legacy_api_key", "xdg_user", True)
    _write(home / ".kaggle" / "kaggle.json", json.dumps({"username": "json_user", "key": "k" * 32}))
    assert sign_in().username == "json_user"
    monkeypatch.setenv("KAGGLE_USERNAME", "env_user")
    monkeypatch.setenv("KAGGLE_KEY", "k" * 32)
    assert sign_in().username == "env_user"


def test_oauth_credentials_of_kaggle_auth_login(home):
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    _write(home / ".kaggle" / "credentials.json", json.dumps({
        "refresh_token": "r", "access_token": "a", "access_token_expiration": later, "username": "oauth_user"}))
    who = sign_in()
    assert (who.method, who.username) == ("oauth", "oauth_user")


# The real client's command-line code, with the one web call replaced; prints what a user would see.
REPLAY = r"""
import sys, types, requests
import kaggle
from kaggle import cli
api = kaggle.api
api.config_values.update(username="u", key="k")
what = sys.argv[1]
if what == "push-error":
    api.kernels_push = lambda *a, **k: types.SimpleNamespace(error="Notebook not found", invalidTags=[])
elif what == "push-bad-source":
    api.kernels_push = lambda *a, **k: types.SimpleNamespace(
        error="", invalidTags=[], invalidDatasetSources=["nobody/no-such-data"], invalidCompetitionSources=[],
        invalidKernelSources=[], versionNumber=3, url="https://www.kaggle.com/code/u/k")
elif what == "push-ok":
    api.kernels_push = lambda *a, **k: types.SimpleNamespace(
        error="", invalidTags=[], invalidDatasetSources=[], invalidCompetitionSources=[],
        invalidKernelSources=[], versionNumber=3, url="https://www.kaggle.com/code/u/k")
elif what == "submit-wrong-slug":
    def fail(*a, **k):
        r = requests.Response(); r.status_code = 404
        raise requests.HTTPError("404 Client Error: Not Found", response=r)
    api.competition_submit = fail
elif what == "submit-ok":
    api.competition_submit = lambda *a, **k: types.SimpleNamespace(
        message="Successfully submitted to Some Competition", ref=123)
    api.competition_get_submission_limits = lambda c: types.SimpleNamespace(num_allowed_now=4)
cmd = ["kernels", "push", "-p", sys.argv[2]] if what.startswith("push") else \
      ["competitions", "submit", "no-such-competition", "-f", sys.argv[2], "-m", "x"]
sys.argv = ["kaggle", *cmd]
cli.main()
"""


def _replay(what, tmp_path):
    target = tmp_path / ("kernel" if what.startswith("push") else "submission.csv")
    if what.startswith("push"):
        target.mkdir(exist_ok=True)
    else:
        target.write_text("id,rating\n1,3.5\n")
    done = subprocess.run([sys.executable, "-c", REPLAY, what, str(target)], capture_output=True, text=True,
                          timeout=120, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "KAGGLE_USERNAME": "u",
                               "KAGGLE_KEY": "k" * 32})
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("what, kind, said", [
    ("push-error", "kernels", "Kernel push error: Notebook not found"),
    ("push-bad-source", "kernels", "nobody/no-such-data"),
    ("submit-wrong-slug", "competitions", "Could not find competition"),
])
def test_failures_the_client_prints_are_failures(tmp_path, what, kind, said):
    rc, out, err = _replay(what, tmp_path)
    assert said in out + err, (rc, out, err)  # the client's own text ...
    with pytest.raises(KaggleError, match=said):  # ... is the error the user sees
        check_output(kind, rc, out, err)


@pytest.mark.parametrize("what, kind", [("push-ok", "kernels"), ("submit-ok", "competitions")])
def test_success_the_client_prints_is_success(tmp_path, what, kind):
    rc, out, err = _replay(what, tmp_path)
    assert rc == 0 and "uccessfully" in check_output(kind, rc, out, err)


def test_silence_is_not_success():
    with pytest.raises(KaggleError, match="did not report success"):
        check_output("kernels", 0, "", "")


def test_kernel_id_from_kernel_id_then_the_file_then_the_client(home, tmp_path):
    out = tmp_path / "kernel"
    meta = lambda: json.loads((out / "kernel-metadata.json").read_text())  # noqa: E731
    build_kernel(out)  # not signed in: the placeholder, which push refuses
    assert meta()["id"].startswith(f"{PLACEHOLDER_USER}/")
    _write(home / ".kaggle" / "kaggle.json", json.dumps({"username": "alice", "key": "k" * 32}))
    with pytest.raises(KaggleError, match="placeholder"):
        push_kernel(out)
    build_kernel(out)
    assert meta()["id"] == "alice/cfblend-movielens-rating-prediction"  # the signed-in user
    doc = meta() | {"id": "alice/hand-edited"}
    (out / "kernel-metadata.json").write_text(json.dumps(doc))
    build_kernel(out)
    assert meta()["id"] == "alice/hand-edited"  # a rebuild keeps a hand edit
    build_kernel(out, kernel_id="team/other-slug")
    assert meta()["id"] == "team/other-slug"
    with pytest.raises(KaggleError, match="owner"):
        build_kernel(out, kernel_id="no-slash")


def test_each_dataset_kernel_reads_its_own_kaggle_copy_or_is_refused(home, tmp_path):
    one_m = json.loads((build_kernel(tmp_path / "k1", "ml-1m", "random") / "kernel-metadata.json").read_text())
    assert one_m["dataset_sources"] == ["odedgolden/movielens-1m-dataset"]
    with pytest.raises(KaggleError, match="no known Kaggle dataset"):
        build_kernel(tmp_path / "k2", "synth-25m", "random")
