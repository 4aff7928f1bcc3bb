"""``tinyvlm models fetch`` against a real HTTP server on 127.0.0.1."""

import functools
import hashlib
import http.server
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tinyvlm_ros import cli
from tinyvlm_ros.models import fetch, registry

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, several chunks


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with Range support (SimpleHTTPRequestHandler has none) and a request log."""

    log: list = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        type(self).log.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "good.pt").write_bytes(PAYLOAD)
    _RangeHandler.log = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(_RangeHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, _RangeHandler.log
    httpd.shutdown()
    httpd.server_close()


def _spec(url, filename="good.pt", sha=hashlib.sha256(PAYLOAD).hexdigest()):
    base = registry.resolve("mobilesam")
    return replace(base, name="test-" + filename, filename=filename, url=f"{url}/{filename}", sha256=sha)


def test_good_file_is_downloaded_verified_and_renamed(server, tmp_path):
    url, _, _ = server
    cache = tmp_path / "cache"
    [out] = fetch.fetch([_spec(url)], cache, timeout=5, progress=False)
    assert out.status == "ok", out.reason
    assert out.path.read_bytes() == PAYLOAD
    assert not list(out.path.parent.glob("*.part"))
    # Second run: verified from the cache, no request.
    n = len(server[2])
    [again] = fetch.fetch([_spec(url)], cache, timeout=5, progress=False)
    assert again.status == "cached" and len(server[2]) == n


def test_bad_checksum_deletes_the_download(server, tmp_path):
    url, _, _ = server
    [out] = fetch.fetch([_spec(url, sha="0" * 64)], tmp_path, timeout=5, progress=False)
    assert out.status == "missing"
    assert "does not match" in out.reason
    assert not out.path.exists()
    assert not list(out.path.parent.glob("*.part"))


def test_wrong_cached_file_is_replaced(server, tmp_path):
    url, _, _ = server
    spec = _spec(url)
    path = registry.checkpoint_path(spec, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"corrupt")
    [out] = fetch.fetch([spec], tmp_path, timeout=5, progress=False)
    assert out.status == "ok" and path.read_bytes() == PAYLOAD


def test_interrupted_download_resumes_with_range(server, tmp_path):
    url, _, log = server
    spec = _spec(url)
    path = registry.checkpoint_path(spec, tmp_path)
    path.parent.mkdir(parents=True)
    path.with_name(path.name + ".part").write_bytes(PAYLOAD[:300_000])
    [out] = fetch.fetch([spec], tmp_path, timeout=5, progress=False)
    assert out.status == "ok", out.reason
    assert path.read_bytes() == PAYLOAD
    assert log[-1] == ("/good.pt", "bytes=300000-")


def test_404_is_reported_with_path_url_and_how_to_export(server, tmp_path):
    url, _, _ = server
    outcomes = fetch.fetch([_spec(url, filename="absent.pt")], tmp_path, timeout=5, progress=False)
    assert outcomes[0].status == "missing" and "HTTP 404" in outcomes[0].reason
    report = fetch.missing_report(outcomes, tmp_path)
    assert str(tmp_path / "checkpoints" / "absent.pt") in report
    assert f"{url}/absent.pt" in report
    assert "tinyvlm models export" in report and "make-test" in report


def test_server_gone_is_reported_not_raised(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    [out] = fetch.fetch([_spec(f"http://127.0.0.1:{port}")], tmp_path, timeout=2, progress=False)
    assert out.status == "missing" and str(port) in out.reason


def test_silent_server_times_out(tmp_path):
    # Accepts connections and never answers: only the timeout ends the wait.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    try:
        t0 = time.monotonic()
        [out] = fetch.fetch([_spec(f"http://127.0.0.1:{sock.getsockname()[1]}")], tmp_path,
                            timeout=0.5, progress=False)
        assert time.monotonic() - t0 < 5
        assert out.status == "missing" and "timed out" in out.reason.lower()
    finally:
        sock.close()


def test_cli_fetch_offline_exits_1_and_names_missing_files(tmp_path, capsys):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    rc = cli.main(["models", "fetch", "mobilesam", "61m-32", "--cache", str(tmp_path), "--quiet",
                   "--timeout", "2", "--mirror", f"http://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert rc == 1
    assert str(tmp_path / "checkpoints" / "mobile_sam.pt") in err
    assert str(tmp_path / "checkpoints" / "TinyCLIP-ViT-61M-32-Text-29M-LAION400M.pt") in err


def test_cli_fetch_from_mirror_and_list(server, tmp_path, capsys):
    url, root, _ = server
    (root / "mobile_sam.pt").write_bytes(PAYLOAD)
    rc = cli.main(["models", "fetch", "mobilesam", "--cache", str(tmp_path), "--quiet", "--mirror", url])
    out = capsys.readouterr().out
    assert rc == 0 and "no published sha256" in out and hashlib.sha256(PAYLOAD).hexdigest() in out
    assert cli.main(["models", "list", "--cache", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "mobilesam" in listing and "cached" in listing and "tinyclip-61m-32" in listing


def test_cli_unknown_model_is_a_user_error(tmp_path, capsys):
    assert cli.main(["models", "fetch", "nope", "--cache", str(tmp_path)]) == 2
    assert "unknown model" in capsys.readouterr().err


def _serve_checkpoints(root, names):
    for name in names:
        (root / registry.resolve(name).filename).write_bytes(PAYLOAD)


def test_cli_fetch_without_names_gets_exactly_the_default_set_and_how_to_export_it(server, tmp_path, capsys):
    url, root, log = server
    _serve_checkpoints(root, registry.MODELS)   # the mirror has every checkpoint; only two are wanted
    rc = cli.main(["models", "fetch", "--cache", str(tmp_path), "--quiet", "--mirror", url])
    out = capsys.readouterr().out
    assert rc == 0, out
    wanted = {"/mobile_sam.pt", "/TinyCLIP-ViT-61M-32-Text-29M-LAION400M.pt"}
    assert {path for path, _ in log} == wanted
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == sorted(w[1:] for w in wanted)
    assert f"default model set {registry.DEFAULT_SET_NAME}" in out
    # the export command names the default set's files and writes where the node looks
    export = out[out.index("tinyvlm models export"):]
    assert "--clip 61m-32" in export and "8m-16" not in out
    assert str(tmp_path / "checkpoints" / "TinyCLIP-ViT-61M-32-Text-29M-LAION400M.pt") in export
    assert f"--out {registry.default_model_set_dir(tmp_path)} " in export


def test_cli_fetch_all_and_named(server, tmp_path, capsys):
    url, root, log = server
    _serve_checkpoints(root, registry.MODELS)
    assert cli.main(["models", "fetch", "all", "--cache", str(tmp_path), "--quiet", "--mirror", url]) == 0
    assert len({path for path, _ in log}) == len(registry.MODELS)
    capsys.readouterr()
    assert cli.main(["models", "fetch", "8m-16", "--cache", str(tmp_path / "b"), "--quiet",
                     "--mirror", url]) == 0
    out = capsys.readouterr().out
    assert "default model set" not in out
    assert f"--out {tmp_path / 'b' / 'sets' / 'mobilesam+tinyclip-8m-16'} " in out


def test_cli_export_defaults_to_the_cache_and_names_what_is_missing(tmp_path, capsys):
    rc = cli.main(["models", "export", "--cache", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and str(tmp_path / "checkpoints" / "mobile_sam.pt") in err and "models fetch" in err


def test_cli_models_help_and_list_show_the_default_set_and_each_set_kind(tmp_path, capsys):
    from tinyvlm_ros.testing.models import make_known_answer_set

    with pytest.raises(SystemExit):
        cli.main(["models", "--help"])
    text = capsys.readouterr().out
    assert registry.DEFAULT_SET_NAME in text
    for sub in ("list", "fetch", "export", "make-test"):
        assert f"tinyvlm models {sub}" in text   # the workflow, not only the names
    make_known_answer_set(tmp_path / "sets" / "ka")
    assert cli.main(["models", "list", "--cache", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "model set ka: known-answer" in listing
    assert f"default set {registry.default_model_set_dir(tmp_path)}: not there yet" in listing
