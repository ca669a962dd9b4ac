"""The Hub transport layer (bloodcell.hub, `bloodcell hub ...`) against the local Hub in hub_server.py.

Every download and upload goes over HTTP to that server through the real huggingface_hub.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from hub_server import hub_server  # noqa: F401  (pytest fixture)

from bloodcell import registry
from bloodcell.cli import main
from bloodcell.errors import ChecksumError, HubError
from bloodcell.hub import (
    download_file,
    download_snapshot,
    parse_hf_source,
    push_folder,
    sha256_file,
)
from bloodcell.zoo import resolve_download

REPO = "lab/tiny-cells"


def model_files(seed: int) -> dict[str, bytes]:
    """A made-up model folder's files; content depends on ``seed``."""
    return {
        "config.json": json.dumps({"architecture": "tiny", "seed": seed}).encode(),
        "model.weights.h5": hashlib.sha256(b"weights %d" % seed).digest() * 64 + bytes(range(256)),
        "README.md": f"---\nlibrary_name: bloodcell\ntags: [seed-{seed}]\n---\n# tiny {seed}\n".encode(),
    }


def write_folder(path, files: dict[str, bytes]):
    path.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (path / name).write_bytes(data)
    return path


def read_folder(path, names) -> dict[str, bytes]:
    return {name: (path / name).read_bytes() for name in names}


@pytest.mark.parametrize(
    "source, expected",
    [
        ("hf://org/model", ("org/model", None)),
        ("hf://org/model@v2", ("org/model", "v2")),
        ("hf://org/model@" + "a" * 40, ("org/model", "a" * 40)),
        ("hf://org/model@refs/pr/1", ("org/model", "refs/pr/1")),
    ],
)
def test_parse_hf_source(source, expected):
    assert parse_hf_source(source) == expected


@pytest.mark.parametrize("source", ["org/model", "hf://model", "hf://org/model/extra", "hf://org/model@", "hf:///model", "hf://org/mo del"])
def test_parse_hf_source_refuses_malformed_sources(source):
    with pytest.raises(ValueError, match="hf://|repo id"):
        parse_hf_source(source)


def test_sources_written_otherwise_bad_revisions_and_endpoints_are_named(hub_server, monkeypatch):
    import bloodcell

    for source, meant in (("https://huggingface.co/lab/m", "hf://lab/m"), ("HF://lab/m", "hf://lab/m"),
                          (" hf://lab/m", "hf://lab/m"), ("hf:/lab/m@v2", "hf://lab/m@v2"),
                          ("https://huggingface.co/lab/m/tree/v2", "hf://lab/m@v2")):
        with pytest.raises(bloodcell.InputNotFoundError, match=f"no such folder; a Hub repo is written {meant}$"):
            bloodcell.load_classifier(source)
    with pytest.raises(bloodcell.ConfigError, match=f"names a file in the repo; a source is the whole model: hf://{REPO}@main$"):
        bloodcell.load_classifier(f"hf://{REPO}@main/config.json")
    for revision in ("..", ".", "a/../b", "v2/"):  # the client would resolve ".." away and load main
        with pytest.raises(bloodcell.ConfigError, match="revision: expected a branch name"):
            bloodcell.load_classifier(f"hf://{REPO}@{revision}")
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "127.0.0.1:8080")  # as HF_ENDPOINT without a scheme
    with pytest.raises(bloodcell.ConfigError, match="HF_ENDPOINT='127.0.0.1:8080' is not a URL; write it with its scheme"):
        download_snapshot(REPO)
    assert hub_server.requests == []


def test_a_cache_that_cannot_be_written_is_named(hub_server, monkeypatch, tmp_path):
    hub_server.create_repo(REPO, model_files(1))
    (tmp_path / "hf-file").write_text("not a folder")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf-file" / "hub"))
    with pytest.raises(HubError, match=r"^the Hugging Face cache .*hf-file/hub cannot hold Hub repo 'lab/tiny-cells' "
                                       r".*; set HF_HOME \(or HF_HUB_CACHE\) to a folder you can write"):
        download_snapshot(REPO)


def test_snapshot_download_gets_the_model_files(hub_server):
    files = model_files(1)
    hub_server.create_repo(REPO, {**files, "notes/train.log": b"not a model file"})

    folder = download_snapshot(REPO)

    assert read_folder(folder, files) == files
    assert not (folder / "notes").exists()
    assert hub_server.cache_dir in folder.parents


def test_revisions_are_honoured(hub_server):
    first = hub_server.create_repo(REPO, model_files(1))
    second = hub_server.commit(REPO, model_files(2))
    hub_server.create_branch(REPO, "stable", revision=first)
    assert first != second

    assert read_folder(download_snapshot(REPO, first), model_files(1)) == model_files(1)
    assert read_folder(download_snapshot(REPO, second), model_files(2)) == model_files(2)
    assert read_folder(download_snapshot(REPO), model_files(2)) == model_files(2)
    assert read_folder(download_snapshot(*parse_hf_source(f"hf://{REPO}@stable")), model_files(1)) == model_files(1)
    assert download_file(REPO, "config.json", revision=first).read_bytes() == model_files(1)["config.json"]


def test_sha256_is_checked(hub_server, tmp_path):
    weights = model_files(1)["model.weights.h5"]
    hub_server.create_repo(REPO, model_files(1))
    right = hashlib.sha256(weights).hexdigest()
    wrong = hashlib.sha256(b"something else").hexdigest()

    path = download_file(REPO, "model.weights.h5", sha256=right.upper())
    assert path.read_bytes() == weights
    assert sha256_file(path) == right

    with pytest.raises(ChecksumError) as info:
        download_file(REPO, "model.weights.h5", sha256=wrong)
    message = str(info.value)
    assert REPO in message and "model.weights.h5" in message and right in message and wrong in message
    with pytest.raises(ValueError, match="64 hex"):
        download_file(REPO, "model.weights.h5", sha256="abc")


def test_offline_mode_uses_the_cache_without_any_request(hub_server):
    sha = hub_server.create_repo(REPO, model_files(1))
    hub_server.create_repo("lab/never-downloaded", model_files(2))
    online = download_snapshot(REPO)
    weights_sha256 = hashlib.sha256(model_files(1)["model.weights.h5"]).hexdigest()
    download_file(REPO, "model.weights.h5", revision=sha, sha256=weights_sha256)
    hub_server.clear_requests()

    hub_server.set_offline()
    assert download_snapshot(REPO) == online
    assert download_snapshot(f"{REPO}", sha) == online
    assert download_file(REPO, "model.weights.h5", sha256=weights_sha256).parent == online
    with pytest.raises(HubError, match="bloodcell hub download hf://lab/never-downloaded.*HF_HUB_OFFLINE"):
        download_snapshot("lab/never-downloaded")
    with pytest.raises(HubError, match="offline"):
        download_file("lab/never-downloaded", "config.json")
    assert hub_server.requests == []


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: download_snapshot("lab/no-such-repo"), r"'lab/no-such-repo' was not found at http://127\.0\.0\.1.*check the repo id"),
        (lambda: download_file("lab/no-such-repo", "config.json"), "'lab/no-such-repo' was not found"),
        (lambda: download_file(REPO, "missing.weights.h5"), f"file 'missing.weights.h5' does not exist in Hub repo '{REPO}'"),
        (lambda: download_snapshot(REPO, "no-such-branch"), f"revision 'no-such-branch' does not exist in Hub repo '{REPO}'"),
        (lambda: download_file(REPO, "config.json", revision="f" * 40), f"revision '{'f' * 40}' does not exist"),
        (lambda: download_snapshot(REPO, allow_patterns=["README.md"]), "has no config.json"),
    ],
    ids=["repo", "repo-file", "file", "revision", "revision-sha", "not-a-model"],
)
def test_missing_things_give_one_clear_hub_error(hub_server, call, expected):
    hub_server.create_repo(REPO, model_files(1))
    with pytest.raises(HubError, match=expected) as info:
        call()
    assert "\n" not in str(info.value)


def test_unreachable_hub_gives_a_hub_error(hub_server):
    hub_server.create_repo(REPO, model_files(1))
    hub_server.stop()
    with pytest.raises(HubError, match=r"could not reach the Hugging Face Hub at http://127\.0\.0\.1.*HF_ENDPOINT"):
        download_snapshot(REPO)


def test_unreachable_hub_fails_at_once_and_still_serves_the_cache(hub_server, caplog):
    hub_server.create_repo(REPO, model_files(1))
    cached = download_snapshot(REPO)
    hub_server.stop()
    with caplog.at_level("WARNING"):
        assert download_snapshot(REPO) == cached  # no network: the cached copy, with no retries
        with pytest.raises(HubError, match=r"\(no connection: .* not in the local cache"):
            download_snapshot("lab/never-downloaded")
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()]


def test_private_repo_needs_a_token(hub_server):
    hub_server.create_repo(REPO, model_files(1), private=True)
    with pytest.raises(HubError, match="private.*hf auth login"):
        download_snapshot(REPO)
    folder = download_snapshot(REPO, token=hub_server.token)
    assert read_folder(folder, model_files(1)) == model_files(1)


def test_push_then_download_gives_identical_bytes(hub_server, tmp_path):
    files = model_files(3)
    sha = push_folder(write_folder(tmp_path / "model", files), REPO, token=hub_server.token, commit_message="first")

    assert sha == hub_server.resolve(REPO, "main")
    assert read_folder(download_snapshot(REPO, sha), files) == files
    assert {name: hub_server.files(REPO)[name] for name in files} == files
    # an unchanged folder makes no new commit, and says nothing about it
    import logging

    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("huggingface_hub").addHandler(handler)
    try:
        assert push_folder(tmp_path / "model", REPO, token=hub_server.token) == sha
    finally:
        logging.getLogger("huggingface_hub").removeHandler(handler)
    assert seen == []


def test_push_to_a_new_branch(hub_server, tmp_path):
    main_sha = push_folder(write_folder(tmp_path / "v1", model_files(1)), REPO, token=hub_server.token)
    branch_sha = push_folder(write_folder(tmp_path / "v2", model_files(2)), REPO, token=hub_server.token, revision="v2")

    assert hub_server.resolve(REPO, "v2") == branch_sha != main_sha
    assert hub_server.resolve(REPO, "main") == main_sha
    assert read_folder(download_snapshot(REPO, "v2"), model_files(2)) == model_files(2)
    assert read_folder(download_snapshot(REPO), model_files(1)) == model_files(1)


def test_push_needs_a_write_token(hub_server, tmp_path):
    folder = write_folder(tmp_path / "model", model_files(1))
    with pytest.raises(HubError, match="refused to write to 'lab/tiny-cells'.*hf auth login"):
        push_folder(folder, REPO)
    with pytest.raises(ValueError, match="branch"):
        push_folder(folder, REPO, revision="a" * 40, token=hub_server.token)
    hub_server.login()  # HF_TOKEN is used when no token is passed
    assert push_folder(folder, REPO) == hub_server.resolve(REPO)


def test_cli_push_and_download(hub_server, tmp_path, capsys):
    files = model_files(4)
    folder = write_folder(tmp_path / "model", files)

    assert main(["hub", "push", str(folder), REPO, "--token", hub_server.token, "--message", "cli push"]) == 0
    sha = hub_server.resolve(REPO)
    assert sha in capsys.readouterr().out

    # its config is another library's: downloaded, but refused there and then, not when loaded offline later
    assert main(["hub", "download", f"hf://{REPO}@{sha}"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"bloodcell hub download: error: hf://{REPO}@{sha}: does not hold a model bloodcell can load "
        f"(expected a bloodcell config (\"format\": \"bloodcell-classifier\"), "
        "got None); check the source, ask the repo's owner, or load another revision"]

    assert main(["hub", "download", f"hf://{REPO}@{sha}", "--revision", "main"]) == 2
    assert "names revision" in capsys.readouterr().err
    assert main(["hub", "download", "hf://lab/no-such-repo"]) == 1  # an input that could not be used
    assert "'lab/no-such-repo' was not found" in capsys.readouterr().err
    assert main(["hub", "download", "mnv3s.pbc96", "--revision", "abc"]) == 2  # bundled: no Hub revisions
    assert "ships inside the bloodcell package" in capsys.readouterr().err
    assert main(["hub", "download", REPO]) == 2  # a repo id without hf://
    assert f"a Hub repo is written hf://{REPO}" in capsys.readouterr().err
    folder = tmp_path / "mine"
    folder.mkdir()
    assert main(["hub", "download", str(folder)]) == 2
    assert f"{folder}: a local folder needs no download; use it as it is (--model {folder})" in capsys.readouterr().err


def test_no_hub_progress_bars_off_a_terminal(hub_server, tmp_path, capfd):
    from huggingface_hub.utils import are_progress_bars_disabled

    assert not are_progress_bars_disabled()  # else this test would prove nothing
    folder = write_folder(tmp_path / "model", model_files(5))
    push_folder(folder, REPO, token=hub_server.token)
    capfd.readouterr()
    download_snapshot(REPO)  # into an empty cache: files are fetched
    err = capfd.readouterr().err
    assert "Fetching" not in err and "%|" not in err


def test_cli_push_refuses_a_folder_without_weights(hub_server, tmp_path, capsys):
    folder = write_folder(tmp_path / "model", {"config.json": b"{}"})
    assert main(["hub", "push", str(folder), REPO, "--token", hub_server.token]) == 2
    assert "missing a *.weights.h5 weights file" in capsys.readouterr().err
    assert main(["hub", "push", str(tmp_path / "absent"), REPO]) == 2
    assert "save_pretrained" in capsys.readouterr().err
    assert hub_server.requests == []


@pytest.fixture
def zoo_entry(hub_server, monkeypatch):
    """A zoo entry whose weights live in the local Hub, registered for this test only."""
    files = model_files(5)
    sha = hub_server.create_repo("bloodcell/tiny-zoo", files)
    hub_server.commit("bloodcell/tiny-zoo", model_files(6))  # main moves on; the entry stays pinned
    monkeypatch.setitem(registry._ARCHITECTURES, "hubtest", registry.ArchitectureInfo("hubtest", dict, "test", "hub test"))
    entry = registry.PretrainedCfg(
        name="hubtest.tiny",
        architecture="hubtest",
        repo_id="bloodcell/tiny-zoo",
        revision=sha,
        sha256=hashlib.sha256(files["model.weights.h5"]).hexdigest(),
    )
    monkeypatch.setitem(registry._PRETRAINED, entry.name, entry)
    return entry, files


def test_zoo_entry_download_is_pinned_and_checked(zoo_entry, monkeypatch):
    entry, files = zoo_entry
    folder = resolve_download(entry.name)
    assert read_folder(folder, ["config.json", "model.weights.h5"]) == {k: files[k] for k in ["config.json", "model.weights.h5"]}
    assert folder.name == entry.revision

    with pytest.raises(ValueError, match="pinned"):
        resolve_download(entry.name, revision="main")
    monkeypatch.setitem(registry._PRETRAINED, entry.name, dataclasses.replace(entry, sha256="0" * 64))
    with pytest.raises(ChecksumError, match="bloodcell/tiny-zoo"):
        resolve_download(entry.name)



def test_downloads_go_through_a_proxy_when_the_hub_host_is_reachable_only_through_it(hub_server, monkeypatch):
    """Behind a proxy the Hub's host refuses direct connections: no probe of it may decide that
    the Hub is unreachable (HTTP_PROXY set, the endpoint's own name unresolvable)."""
    import http.server
    import socketserver
    import threading
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    from hub_server import point_huggingface_hub_at
    from huggingface_hub.utils import close_session

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    class Proxy(http.server.BaseHTTPRequestHandler):
        def forward(self):
            url = urlsplit(self.path)  # a proxy gets the absolute URL
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")}
            request = urllib.request.Request(hub_server.url + url.path + (f"?{url.query}" if url.query else ""),
                                             data=body, method=self.command, headers=headers)
            try:
                reply = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect).open(request)
                status, reply_headers, data = reply.status, reply.headers, reply.read()
            except urllib.error.HTTPError as exc:
                status, reply_headers, data = exc.code, exc.headers, exc.read()
            self.send_response(status)
            for k, v in reply_headers.items():
                if k.lower() not in ("transfer-encoding", "connection", "content-length", "content-encoding"):
                    self.send_header(k, v)
            length = reply_headers.get("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_HEAD = do_POST = forward

        def log_message(self, *args):
            pass

    files = model_files(3)
    hub_server.create_repo(REPO, files)
    proxy = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Proxy)
    proxy.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        point_huggingface_hub_at(monkeypatch, "http://hub.invalid:80", hub_server.home)
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        close_session()
        assert read_folder(download_snapshot(REPO), files) == files
    finally:
        proxy.shutdown()
        close_session()


def test_a_hub_that_drops_requests_still_serves_the_cache(hub_server):
    import socket
    import threading
    from urllib.parse import urlsplit

    hub_server.create_repo(REPO, model_files(1))
    cached = download_snapshot(REPO)  # by branch: resolving it needs the Hub
    port = urlsplit(hub_server.url).port
    hub_server.stop()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.settimeout(0.2)
    done = threading.Event()

    def drop_every_connection():  # a broken proxy or mirror: the connection is taken, then closed
        while not done.is_set():
            try:
                listener.accept()[0].close()
            except OSError:
                pass

    thread = threading.Thread(target=drop_every_connection, daemon=True)
    thread.start()
    try:
        assert download_snapshot(REPO) == cached
        with pytest.raises(HubError, match="could not reach"):
            download_snapshot("lab/never-downloaded")
    finally:
        done.set()
        thread.join()
        listener.close()


def test_a_refused_token_is_named_as_the_cause(hub_server, monkeypatch):
    hub_server.create_repo(REPO, model_files(1))
    with pytest.raises(HubError, match=r"refused the token sent for 'lab/tiny-cells' \(HTTP 401\).*unset HF_TOKEN"):
        download_snapshot(REPO, token="hf_not_a_real_token")


def test_hub_download_never_tells_the_user_to_run_itself(hub_server, capsys):
    hub_server.create_repo(REPO, model_files(1))
    hub_server.set_offline()
    assert main(["hub", "download", f"hf://{REPO}"]) == 1
    err = capsys.readouterr().err
    prefix, _, message = err.partition(": error: ")
    assert prefix == "bloodcell hub download"  # the command names itself; its message does not send the user to it
    assert "offline mode is on (HF_HUB_OFFLINE=1); unset HF_HUB_OFFLINE" in message and "bloodcell hub download" not in message
    with pytest.raises(HubError, match=f"run `bloodcell hub download hf://{REPO}` while online"):
        download_snapshot(REPO)  # elsewhere the hint stays
