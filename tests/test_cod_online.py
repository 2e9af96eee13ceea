"""The online COD client against a local HTTP server on 127.0.0.1 that also misbehaves on purpose."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from xtalml.sources.cod_online import CodQuery, CodUnreachableError, download_cifs, search_cod_ids

CIF = (Path(__file__).resolve().parents[2] / "shared" / "data" / "cod-cifs" / "1569774.cif")


class FakeCod(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}
    queries: list[str] = []

    def log_message(self, *args):
        pass

    def _send(self, code, body: bytes, length: int | None = None):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        FakeCod.hits[name] = FakeCod.hits.get(name, 0) + 1
        if self.path.startswith("/cod/result"):
            FakeCod.queries.append(self.path)
            return self._send(200, b"1000001\n1000002\n1000003\n1000004\n1000005\n1000006\n2000000\n")
        body = CIF.read_bytes()
        if name == "1000002.cif" and FakeCod.hits[name] < 3:
            return self._send(503, b"busy")  # fails twice, then works
        if name == "1000003.cif":
            return self._send(404, b"no such entry")
        if name == "1000004.cif":
            return self._send(200, body[:100], length=len(body))  # truncated body
        if name == "1000005.cif":
            time.sleep(1.5)  # slower than the client's timeout
        return self._send(200, body)


@pytest.fixture()
def server():
    FakeCod.hits, FakeCod.queries = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeCod)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/cod"
    httpd.shutdown()
    httpd.server_close()


def test_search_applies_filters_range_and_cap(server):
    query = CodQuery(elements=["Si", "O"], exclude_elements=["H"], min_elements=2, max_elements=3,
                     id_min=1000002, id_max=1999999, max_count=4)
    assert search_cod_ids(query, server, timeout=5) == ["1000002", "1000003", "1000004", "1000005"]
    sent = FakeCod.queries[0]
    for part in ("el1=Si", "el2=O", "nel1=H", "strictmin=2", "strictmax=3", "format=lst"):
        assert part in sent


def test_download_retries_records_failures_and_resumes(server, tmp_path):
    ids = ["1000001", "1000002", "1000003", "1000004", "1000005"]
    ok, failed = download_cifs(ids, tmp_path, server, concurrency=3, timeout=0.5, retries=2, backoff_s=0.01)
    assert sorted(ok) == ["1000001", "1000002"]
    assert FakeCod.hits["1000002.cif"] == 3  # two 503 answers, then success
    assert failed["1000003"].startswith("HTTP 404") and FakeCod.hits["1000003.cif"] == 1
    assert "truncated" in failed["1000004"] and "timed out" in failed["1000005"].lower()
    assert ok["1000001"].read_bytes() == CIF.read_bytes()
    assert not list(tmp_path.glob("*.part")) and not (tmp_path / "1000004.cif").exists()

    (tmp_path / "1000006.cif.part").write_bytes(b"partial from an interrupted run")
    before = dict(FakeCod.hits)
    ok, _ = download_cifs(["1000001", "1000006"], tmp_path, server, timeout=2, retries=0)
    assert FakeCod.hits["1000001.cif"] == before["1000001.cif"]  # complete file is not fetched again
    assert FakeCod.hits["1000006.cif"] == 1  # a partial file never counts as complete
    assert ok["1000006"].read_bytes() == CIF.read_bytes()


def test_unreachable_server_gives_a_clear_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    url = f"http://127.0.0.1:{port}/cod"
    with pytest.raises(CodUnreachableError, match="cannot reach COD"):
        search_cod_ids(CodQuery(), url, timeout=2)
    with pytest.raises(CodUnreachableError, match="cannot reach COD"):
        download_cifs(["1000001"], tmp_path, url, timeout=2, retries=1, backoff_s=0.01)
