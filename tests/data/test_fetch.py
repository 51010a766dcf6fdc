"""Downloads against a local HTTP server: good, resumed, server without Range, corrupted, 404."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from bihm_app.data import load_dataset
from bihm_app.data.fetch import download, downloads_dir, fetch_dataset, fetch_remote
from bihm_app.data.paths import data_home
from bihm_app.data.remote import RemoteDataset, RemoteFile
from bihm_app.errors import DataError

from .conftest import binary, leftovers


class Server:
    """Serves `files` (path -> bytes) on 127.0.0.1:random port; honours Range unless told not to."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.ranges: list[str | None] = []
        self.honour_range = True
        self.sent: dict[str, int] = {}  # bytes written per endless path
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                if self.path.startswith("/endless"):  # zeros without end and without a length
                    self.send_response(200)
                    if self.path == "/endless-declared":
                        self.send_header("Content-Length", str(10**13))
                    self.end_headers()
                    block = bytes(1 << 16)
                    try:
                        while server.sent.get(self.path, 0) < 1 << 30:  # 1 GiB: the test fails long before
                            self.wfile.write(block)
                            server.sent[self.path] = server.sent.get(self.path, 0) + len(block)
                    except OSError:  # the client hung up
                        pass
                    return
                body = server.files.get(self.path)
                rng = self.headers.get("Range")
                server.ranges.append(rng)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if rng and server.honour_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # shutdown() waits for serve_forever's next poll: 20 ms instead of the default 0.5 s per test
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


PAYLOAD = bytes(range(256)) * 1000  # 256 kB, several chunks


def test_good_download_with_progress(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    seen = []
    dest = download(server.url("/f.bin"), tmp_path / "f.bin", _sha(PAYLOAD), progress=lambda l, d, t: seen.append((d, t)))
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "f.bin.part").exists()
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert server.ranges == [None]


def test_resume_from_partial_file(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:100_000])
    dest = download(server.url("/f.bin"), tmp_path / "f.bin", _sha(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.ranges == ["bytes=100000-"]


def test_resume_when_server_ignores_range_starts_over(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.honour_range = False
    (tmp_path / "f.bin.part").write_bytes(b"garbage that is not the start of the file")
    assert download(server.url("/f.bin"), tmp_path / "f.bin", _sha(PAYLOAD)).read_bytes() == PAYLOAD


def test_complete_part_file_is_verified_without_refetching(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)
    assert download(server.url("/f.bin"), tmp_path / "f.bin", _sha(PAYLOAD)).read_bytes() == PAYLOAD
    assert server.ranges == [f"bytes={len(PAYLOAD)}-"]


def test_corrupted_download_is_deleted(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD[:-1] + b"X"
    with pytest.raises(DataError, match="checksum mismatch.*the download was deleted") as e:
        download(server.url("/f.bin"), tmp_path / "f.bin", _sha(PAYLOAD))
    assert "\n" not in str(e.value)
    assert leftovers(tmp_path) == []


def test_http_error_and_bad_checksum_argument(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        download(server.url("/missing"), tmp_path / "m.bin", _sha(b""))
    with pytest.raises(DataError, match="not a SHA-256"):
        download(server.url("/missing"), tmp_path / "m.bin", "abc")
    assert leftovers(tmp_path) == []


def test_a_download_that_passes_the_size_limit_is_stopped_and_deleted(server, tmp_path):
    """A server that streams zeros without end (no Content-Length) filled the disk: 73 GB in 90 s.
    Catches a download with no size cap: the stream stops at the limit (here 1 MB), the .part file
    is deleted, one line names the limit and the option that raises it. A declared Content-Length
    over the limit is refused before anything is written."""
    sha = _sha(b"x")
    for path in ("/endless", "/endless-declared"):
        with pytest.raises(DataError, match="the limit of 1,000,000 bytes .*--max-bytes") as info:
            download(server.url(path), tmp_path / "e.bin", sha, max_bytes=1_000_000)
        assert "\n" not in str(info.value) and leftovers(tmp_path) == []
    assert server.sent["/endless"] < 50_000_000  # stopped soon after the limit (the socket buffers a little)
    assert "declares 10,000,000,000,000 bytes" in str(info.value)
    (tmp_path / "e.bin.part").write_bytes(bytes(2_000_000))  # a leftover from a larger limit; the server ignores Range
    with pytest.raises(DataError, match="the limit of 1,000,000 bytes"):
        download(server.url("/endless"), tmp_path / "e.bin", sha, max_bytes=1_000_000)
    assert leftovers(tmp_path) == []
    server.files["/f.bin"] = PAYLOAD  # under the limit: as before
    assert download(server.url("/f.bin"), tmp_path / "f.bin", _sha(PAYLOAD), max_bytes=len(PAYLOAD)).read_bytes() == PAYLOAD


def test_fetch_refuses_a_bad_max_bytes_before_downloading(server, rng):
    x = binary(rng, 60, 9)
    server.files["/any.csv"] = _csv(x)
    with pytest.raises(DataError, match="--max-bytes must be at least 1"):
        fetch_dataset("anyset2", url=server.url("/any.csv"), sha256={"all": _sha(_csv(x))}, max_bytes=0)
    assert server.ranges == []  # nothing was requested


def _csv(x: np.ndarray) -> bytes:
    return ("\n".join(",".join(map(str, r)) for r in x) + "\n").encode()


def test_fetch_remote_split_files_converts_to_a_loadable_set(server, rng):
    parts = {"train": binary(rng, 50, 12), "valid": binary(rng, 10, 12), "test": binary(rng, 8, 12)}
    files = []
    for s, x in parts.items():
        server.files[f"/toy.{s}.data"] = _csv(x)
        files.append(RemoteFile(s, server.url(f"/toy.{s}.data"), _sha(_csv(x))))
    spec = RemoteDataset("toy", "a toy set", tuple(files), "csv", dim=12, image_shape=(3, 4))
    folder = fetch_remote(spec)
    ds = load_dataset("toy")
    assert ds.source == "fetched" and ds.image_shape == (3, 4) and folder.name == "toy"
    for s, x in parts.items():
        assert np.array_equal(ds.get(s), x)
    assert not downloads_dir("toy").exists()


def test_fetch_remote_rejects_wrong_dimension_and_writes_nothing(server, rng):
    x = binary(rng, 50, 12)
    server.files["/a.csv"] = _csv(x)
    spec = RemoteDataset("dimcheck", "", (RemoteFile("all", server.url("/a.csv"), _sha(_csv(x))),), "csv", dim=13)
    with pytest.raises(DataError, match="expected dimension 13, found \\[12\\]") as info:
        fetch_remote(spec)
    assert not (data_home() / "dimcheck").exists()
    # the verified download stays for the next try, and the line says where (it was left unmentioned)
    assert f"kept in {downloads_dir('dimcheck')}" in str(info.value) and downloads_dir("dimcheck").exists()


def test_fetch_checks_the_split_fractions_before_downloading(server, rng):
    """--valid-fraction 0.99 --test-fraction 0.5 was refused only after the download. Catches a
    request made before the fractions are checked."""
    from bihm_app.data.importer import SplitPlan

    x = binary(rng, 50, 12)
    server.files["/a.csv"] = _csv(x)
    spec = RemoteDataset("fractions", "", (RemoteFile("all", server.url("/a.csv"), _sha(_csv(x))),), "csv")
    with pytest.raises(DataError, match="--valid-fraction \\+ --test-fraction must be < 1"):
        fetch_remote(spec, plan=SplitPlan(valid_fraction=0.99, test_fraction=0.5))
    assert server.ranges == []


def test_table_entry_without_pinned_checksum_refuses_to_download():
    with pytest.raises(DataError, match="no SHA-256 is pinned .* --sha256 train=HEX"):
        fetch_dataset("ocr_letters")
    with pytest.raises(DataError, match="no public copy"):
        fetch_dataset("web")


def test_generic_fetch_by_url_needs_a_checksum(server, rng):
    x = binary(rng, 60, 9)
    server.files["/any.csv"] = _csv(x)
    with pytest.raises(DataError, match="--sha256"):
        fetch_dataset("anyset", url=server.url("/any.csv"))
    fetch_dataset("anyset", url=server.url("/any.csv"), sha256={"all": _sha(_csv(x))})
    ds = load_dataset("anyset")
    assert sum(ds.size(s) for s in ds.split_names) == 60 and ds.dim == 9
    with pytest.raises(DataError, match="built in"):
        fetch_dataset("bmnist", url=server.url("/any.csv"), sha256={"all": _sha(_csv(x))})
