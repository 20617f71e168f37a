"""`make kernel-push` and `make submit`: thin calls of the kaggle client, which decides who is signed in.

The kaggle package authenticates when imported (and may call Kaggle to check a token), so it is
never imported into this process. `sign_in()` asks the client itself, in a subprocess, which of
its sign-in methods it finds (its own order: `KAGGLE_API_TOKEN` or `~/.kaggle/access_token`, the
legacy `kaggle.json` or `KAGGLE_USERNAME`+`KAGGLE_KEY`, the OAuth credentials of `kaggle auth
login`; `KAGGLE_CONFIG_DIR` and `~/.config/kaggle` as the client reads them) and the user name
it signs in as. The client's commands print some failures and still exit 0 ("Kernel push
error: ...", invalid dataset sources); `check_output` reads what they print and fails with it.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cfblend.errors import KaggleError

log = logging.getLogger(__name__)

NO_CREDENTIALS = ("no Kaggle credentials found by the kaggle client: run `kaggle auth login`, or create an API "
                  "token at https://www.kaggle.com/settings/api and set KAGGLE_API_TOKEN=<token> (or save it to "
                  "~/.kaggle/access_token); the legacy ~/.kaggle/kaggle.json still works")

# Runs in a subprocess: import kaggle (which signs in, the client's own way), then report what it found.
# Offline, a token cannot be checked (the client asks Kaggle who owns it): it is reported as found, unverified.
PROBE = r"""
import contextlib, io, json, os
out = {"method": None, "source": None, "username": None, "verified": False}
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    import kaggle
    api = kaggle.api
    values = api.config_values
    method = values.get("auth_method")
    if method:
        out.update(method=method.lower(), username=values.get("username"), verified=True,
                   source=api.config if method == "LEGACY_API_KEY" else None)
    else:
        from kagglesdk import KaggleCredentials, get_access_token_from_env
        token, where = get_access_token_from_env()
        if token:
            out.update(method="access_token", source=where)
        else:
            creds = KaggleCredentials.load(client=None)
            if creds:
                out.update(method="oauth", source=KaggleCredentials.DEFAULT_CREDENTIALS_FILE,
                           username=creds.get_username())
print(json.dumps(out))
"""


@dataclass(frozen=True)
class SignIn:
    """What the kaggle client found: its sign-in method (None: none), where, and the user name (None when
    only Kaggle can say, e.g. an access token checked offline)."""

    method: str | None
    source: str | None
    username: str | None
    verified: bool

    def describe(self) -> str:
        """One line for the log."""
        if not self.method:
            return "not signed in"
        who = self.username or "user unknown until Kaggle confirms the token"
        return f"{self.method} ({self.source or 'env'}): {who}{'' if self.verified else ', not verified'}"


def sign_in(timeout: float = 60.0) -> SignIn:
    """Ask the installed kaggle client who it signs in as (see the module docstring)."""
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise KaggleError(f"the kaggle client did not answer within {timeout:.0f} s") from e
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise KaggleError(f"the kaggle client cannot start: {last} (run `make install`)")
    return SignIn(**json.loads(lines[-1]))


def client() -> str:
    """The kaggle executable, once the client finds credentials; `KaggleError` saying what to do otherwise."""
    exe = shutil.which("kaggle") or str(Path(sys.executable).parent / "kaggle")
    if not Path(exe).exists():
        raise KaggleError("the kaggle client is not installed: run `make install`")
    who = sign_in()
    if not who.method:
        raise KaggleError(NO_CREDENTIALS)
    log.info("kaggle: %s", who.describe())
    return exe


# What the client prints when a command failed but exits 0 anyway (kaggle 2.x), and what it prints on success.
FAILURE_MARKERS = ("Kernel push error", "are not valid dataset sources", "are not valid competition sources",
                   "are not valid kernel sources", "Could not submit to competition", "Could not find competition",
                   "401 Client Error", "403 Client Error", "404 Client Error")
SUCCESS_MARKERS = {"kernels": ("successfully pushed", "successfully saved"),
                   "competitions": ("Successfully submitted", "Submission ref:")}


def check_output(kind: str, returncode: int, stdout: str, stderr: str) -> str:
    """The client's output when it reports success; `KaggleError` with its own words when it does not
    (a non-zero exit, a failure line, or no success line at all)."""
    text = "\n".join(s.strip() for s in (stdout, stderr) if s and s.strip())
    failed = [line for line in text.splitlines() if any(m in line for m in FAILURE_MARKERS)]
    if returncode != 0 or failed:
        raise KaggleError(f"kaggle {kind} failed: {' | '.join(failed) or text or f'exit status {returncode}'}")
    if not any(m in text for m in SUCCESS_MARKERS[kind]):
        raise KaggleError(f"kaggle {kind}: the client did not report success: {text or '(no output)'}")
    return text


def _run(kind: str, cmd: list[str]) -> str:
    log.info("running: %s", " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    text = check_output(kind, done.returncode, done.stdout, done.stderr)
    log.info("%s", text)
    return text


def push_kernel(folder: Path | str = "kernel") -> str:
    """`kaggle kernels push -p <folder>`, refusing a kernel whose id is still the placeholder."""
    from cfblend.kaggle.kernel import PLACEHOLDER_USER

    folder = Path(folder)
    meta_file = folder / "kernel-metadata.json"
    if not meta_file.exists():
        raise KaggleError(f"{meta_file} missing: run `make kernel` first")
    exe = client()
    kernel_id = json.loads(meta_file.read_text()).get("id", "")
    if not kernel_id or kernel_id.startswith(f"{PLACEHOLDER_USER}/"):
        raise KaggleError(f"{meta_file}: kernel id {kernel_id!r} is a placeholder: rebuild with `make kernel "
                          "KERNEL_ID=<your-user>/<slug>` (or sign in so the client knows your user name)")
    return _run("kernels", [exe, "kernels", "push", "-p", str(folder)])


def submit(competition: str, file: Path | str, message: str) -> str:
    """`kaggle competitions submit <competition> -f <file> -m <message>`."""
    if not competition:
        raise KaggleError("no competition given: `make submit COMP=<competition-slug>`")
    if not Path(file).exists():
        raise KaggleError(f"{file} missing: run `make all` (or `make blend`) first")
    return _run("competitions", [client(), "competitions", "submit", competition, "-f", str(file), "-m", message])
