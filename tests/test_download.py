"""The download path, offline: a local HTTP server on 127.0.0.1 serves a small zip in the official
layout (and a corrupted one); the PyPI-mirror unpacking runs on an archive built here."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from cfblend.data.sources import _read_archive_dir, _write_ml100k_from_recbole, ensure_dataset
from cfblend.errors import DataError


def _zip(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"ml-100k/{f.name}")  # the official zip's top folder
    return buf.getvalue()


@pytest.fixture
def server():
    """A loopback HTTP server for the test's files; stops by itself when the test ends."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield files, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def _offline_spec(spec, url: str, md5: str):
    return replace(spec, zip_url=url, zip_md5=md5, kaggle_dataset=None, pypi=None)


def test_the_official_zip_is_downloaded_checked_and_installed(ml100k_dir, tmp_path, server):
    files, base = server
    raw, spec = ml100k_dir
    blob = _zip(raw)
    files["/ml-100k.zip"] = blob
    spec = _offline_spec(spec, f"{base}/ml-100k.zip", hashlib.md5(blob).hexdigest())
    out = ensure_dataset(spec, tmp_path / "input", kaggle_input=tmp_path / "no-kaggle")
    assert (out / "u.data").read_bytes() == (raw / "u.data").read_bytes()
    assert '"source": "GroupLens"' in (out / "SOURCE.json").read_text()


def test_a_corrupted_zip_is_refused_and_nothing_is_installed(ml100k_dir, tmp_path, server):
    files, base = server
    raw, spec = ml100k_dir
    blob = _zip(raw)
    files["/ml-100k.zip"] = blob[:-50] + b"x" * 50
    spec = _offline_spec(spec, f"{base}/ml-100k.zip", hashlib.md5(blob).hexdigest())
    with pytest.raises(DataError, match=r"(?s)could not obtain ml-100k.*GroupLens: .*zip MD5 .*expected"):
        ensure_dataset(spec, tmp_path / "input", kaggle_input=tmp_path / "no-kaggle")
    assert not (tmp_path / "input" / "ml-100k").exists()


def test_the_sources_are_tried_in_order_and_each_failure_is_named(ml100k_dir, tmp_path, server):
    _, base = server
    _, spec = ml100k_dir
    spec = _offline_spec(spec, f"{base}/missing.zip", "0" * 32)  # the server answers 404
    with pytest.raises(DataError) as e:
        ensure_dataset(spec, tmp_path / "input", kaggle_input=tmp_path / "no-kaggle")
    text = str(e.value)
    assert text.index("Kaggle input") < text.index("GroupLens") < text.index("Kaggle API") < text.index("PyPI mirror")
    assert "404" in text


def test_the_recbole_mirror_is_unpacked_into_the_official_layout(tmp_path):
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t4\t881250949\n2\t10\t3\t891717742\n"
    user = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n1\t24\tM\ttechnician\t85711\n"
    item = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
            "10\tRichard III\t1995\tDrama War\n")
    wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in (("ml-100k.inter", inter), ("ml-100k.user", user), ("ml-100k.item", item)):
            zf.writestr(f"recbole/dataset_example/ml-100k/{name}", text)
        zf.writestr("recbole/other/file.txt", "not this")
    members = _read_archive_dir(wheel, "recbole/dataset_example/ml-100k")
    assert set(members) == {"ml-100k.inter", "ml-100k.user", "ml-100k.item"}
    _write_ml100k_from_recbole(members, tmp_path)
    assert (tmp_path / "u.data").read_text() == "1\t10\t4\t881250949\n2\t10\t3\t891717742\n"
    assert (tmp_path / "u.user").read_text(encoding="latin-1") == "1|24|M|technician|85711\n"
    line = (tmp_path / "u.item").read_text(encoding="latin-1")
    assert line.startswith("10|Richard III (1995)|01-Jan-1995|||") and line.count("|") == 5 + 18
