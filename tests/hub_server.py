"""A local Hugging Face Hub for tests.

:class:`HubServer` speaks the part of the Hub's HTTP protocol that ``huggingface_hub`` (2.x) uses to
download and publish model repos: ``hf_hub_download`` (HEAD/GET ``/{repo}/resolve/{rev}/{path}``),
``snapshot_download``/``model_info``/``repo_info`` (``/api/models/{repo}[/revision/{rev}]`` and the
``tree`` listing), ``create_repo``, ``create_branch``, and ``upload_folder``/``create_commit``
(``preupload`` answers "regular" for every file, so contents travel inline, base64, in the ndjson
commit payload; no LFS or Xet storage is involved). Errors carry the ``X-Error-Code`` headers from
which ``huggingface_hub`` raises its own ``RepositoryNotFoundError``, ``RevisionNotFoundError`` and
``RemoteEntryNotFoundError``.

Repos live under ``root/<owner>/<name>/`` as a ``repo.json`` (branches and commits, each commit a
full ``path -> git blob sha1`` tree) and an ``objects/`` folder of blobs named by their git sha1.
Every commit gets a fresh 40-hex sha; a revision is a branch name or a full commit sha.

Authentication: reads of public repos need no token; private repos need a valid token; writes need
:data:`WRITE_TOKEN` (``HubServer.token``). :data:`READ_TOKEN` can read but not write.

The :func:`hub_server` fixture starts one server per test and points ``huggingface_hub`` at it
(``HF_ENDPOINT``, ``HF_HOME`` in a temporary folder, and the module constants derived from them).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import itertools
import json
import re
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Union
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

WRITE_TOKEN = "hf_localhub_write_token"
READ_TOKEN = "hf_localhub_read_token"
USER_NAME = "localhub-user"

FileContent = Union[bytes, str, Path]
"""Content of a file given to the helpers: bytes, text (UTF-8) or a local file to read."""

_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.DOTALL)
_GITATTRIBUTES = b"*.h5 filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob: what the Hub uses as ETag and ``oid`` of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _as_bytes(content: FileContent) -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8")
    if isinstance(content, Path):
        return content.read_bytes()
    raise TypeError(f"file content must be bytes, str or pathlib.Path, got {type(content).__name__}")


def _card_data(readme: bytes | None) -> dict[str, Any] | None:
    """The YAML front matter of a README.md, as the Hub returns it in ``cardData``."""
    if readme is None:
        return None
    match = _FRONT_MATTER.match(readme.decode("utf-8", errors="replace"))
    if match is None:
        return None
    data = yaml.safe_load(match.group(1))
    return data if isinstance(data, dict) else None


class HubHTTPError(Exception):
    """An error answer of the local Hub (raised by handlers, turned into an HTTP response)."""

    def __init__(self, status: int, message: str, *, code: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    authorized: bool


@dataclass
class _Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> "_Response":
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


_REPO = r"(?P<repo>[^/]+/[^/]+)"
_API = rf"/api/models/{_REPO}"


class HubServer:
    """A Hub-compatible HTTP server on 127.0.0.1 serving the model repos stored under ``root``."""

    def __init__(self, root: Path | str, *, tokens: Mapping[str, str] | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.token = WRITE_TOKEN
        self.tokens: dict[str, str] = dict(tokens) if tokens is not None else {WRITE_TOKEN: "write", READ_TOKEN: "read"}
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._commit_counter = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., _Response]]] = [
            (method, re.compile(pattern + r"\Z"), handler)
            for method, pattern, handler in [
                ("POST", r"/api/repos/create", self._api_create_repo),
                ("DELETE", r"/api/repos/delete", self._api_delete_repo),
                ("POST", r"/api/validate-yaml", self._api_validate_yaml),
                ("GET", r"/api/whoami-v2", self._api_whoami),
                ("GET", r"/api/agent-harnesses", self._api_agent_harnesses),
                ("GET", _API, self._api_model_info),
                ("GET", _API + r"/revision/(?P<rev>[^/]+)", self._api_model_info),
                ("GET", _API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?", self._api_tree),
                ("GET", _API + r"/refs", self._api_refs),
                ("POST", _API + r"/preupload/(?P<rev>[^/]+)", self._api_preupload),
                ("POST", _API + r"/commit/(?P<rev>[^/]+)", self._api_commit),
                ("POST", _API + r"/branch/(?P<branch>[^/]+)", self._api_create_branch),
                ("DELETE", _API + r"/branch/(?P<branch>[^/]+)", self._api_delete_branch),
                ("GET", rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self._resolve),
                ("HEAD", rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self._resolve),
            ]
        ]

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "HubServer":
        """Listen on a free port of 127.0.0.1 in a background thread; sets :attr:`url`."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler, self)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (the repos stay on disk); later requests fail to connect."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        assert self._thread is not None
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------------ helpers for tests

    def create_repo(
        self,
        repo_id: str,
        files: Mapping[str, FileContent] | None = None,
        *,
        private: bool = False,
        message: str = "Add files",
    ) -> str:
        """Create ``repo_id`` (if missing) and commit ``files`` to ``main``; returns main's commit sha."""
        with self._lock:
            if self._load(repo_id) is None:
                self._create(repo_id, private=private)
            if files:
                return self.commit(repo_id, files, message=message)
            return self.resolve(repo_id)

    def commit(
        self,
        repo_id: str,
        files: Mapping[str, FileContent] | None = None,
        *,
        branch: str = "main",
        delete: Iterable[str] = (),
        message: str = "Update files",
    ) -> str:
        """Commit ``files`` (added or replaced) and ``delete`` (removed paths) to ``branch``, creating the
        branch from ``main`` if it is missing; returns the new commit sha."""
        with self._lock:
            state = self._require(repo_id)
            if branch not in state["branches"]:
                self.create_branch(repo_id, branch)
                state = self._require(repo_id)
            added = {path: _as_bytes(content) for path, content in (files or {}).items()}
            return self._commit(repo_id, state, branch, added=added, deleted=list(delete), message=message)

    def create_branch(self, repo_id: str, branch: str, *, revision: str = "main") -> str:
        """Create ``branch`` at ``revision``; returns the commit sha it points to."""
        with self._lock:
            state = self._require(repo_id)
            if branch in state["branches"]:
                raise HubHTTPError(409, f"Reference already exists: refs/heads/{branch}")
            if _COMMIT_SHA.fullmatch(branch):
                raise HubHTTPError(400, f"Invalid branch name {branch!r}: it looks like a commit sha")
            sha = self._resolve_rev(repo_id, state, revision)
            state["branches"][branch] = sha
            self._save(repo_id, state)
            return sha

    def resolve(self, repo_id: str, revision: str = "main") -> str:
        """The commit sha that ``revision`` (a branch or a full commit sha) names."""
        with self._lock:
            return self._resolve_rev(repo_id, self._require(repo_id), revision)

    def has_repo(self, repo_id: str) -> bool:
        """Whether ``repo_id`` was created."""
        return self._load(repo_id) is not None

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Every file of ``repo_id`` at ``revision``, path -> content."""
        with self._lock:
            state = self._require(repo_id)
            tree = state["commits"][self._resolve_rev(repo_id, state, revision)]["tree"]
            return {path: self._blob(repo_id, oid) for path, oid in tree.items()}

    # ------------------------------------------------------------------ storage

    def _repo_dir(self, repo_id: str) -> Path:
        owner, name = repo_id.split("/")
        return self.root / owner / name

    def _load(self, repo_id: str) -> dict[str, Any] | None:
        state_file = self._repo_dir(repo_id) / "repo.json"
        return json.loads(state_file.read_text()) if state_file.is_file() else None

    def _save(self, repo_id: str, state: dict[str, Any]) -> None:
        state_file = self._repo_dir(repo_id) / "repo.json"
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(state_file)

    def _require(self, repo_id: str) -> dict[str, Any]:
        state = self._load(repo_id)
        if state is None:
            raise HubHTTPError(404, f"Repository not found: {repo_id}", code="RepoNotFound")
        return state

    def _blob(self, repo_id: str, oid: str) -> bytes:
        return (self._repo_dir(repo_id) / "objects" / oid).read_bytes()

    def _create(self, repo_id: str, *, private: bool) -> None:
        (self._repo_dir(repo_id) / "objects").mkdir(parents=True)
        state = {"private": private, "created_at": _now(), "branches": {}, "commits": {}}
        self._commit(repo_id, state, "main", added={".gitattributes": _GITATTRIBUTES}, deleted=[], message="initial commit")

    def _resolve_rev(self, repo_id: str, state: dict[str, Any], revision: str) -> str:
        if revision in state["branches"]:
            return state["branches"][revision]
        if revision in state["commits"]:
            return revision
        raise HubHTTPError(404, f"Invalid rev id: {revision} (repo {repo_id})", code="RevisionNotFound")

    def _commit(
        self,
        repo_id: str,
        state: dict[str, Any],
        branch: str,
        *,
        added: Mapping[str, bytes],
        deleted: Iterable[str],
        message: str,
        deleted_folders: Iterable[str] = (),
    ) -> str:
        parent = state["branches"].get(branch)
        tree = dict(state["commits"][parent]["tree"]) if parent else {}
        for path in deleted:
            if tree.pop(path, None) is None:
                raise HubHTTPError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
        for folder in deleted_folders:
            prefix = folder.rstrip("/") + "/"
            for path in [p for p in tree if p.startswith(prefix)]:
                del tree[path]
        objects = self._repo_dir(repo_id) / "objects"
        for path, data in added.items():
            oid = git_blob_sha1(data)
            if not (objects / oid).exists():
                (objects / oid).write_bytes(data)
            tree[path] = oid
        stamp = f"{time.time_ns()}-{next(self._commit_counter)}"
        sha = hashlib.sha1(json.dumps([parent, tree, message, stamp], sort_keys=True).encode()).hexdigest()
        state["commits"][sha] = {"parent": parent, "message": message, "date": _now(), "tree": tree}
        state["branches"][branch] = sha
        self._save(repo_id, state)
        return sha

    # ------------------------------------------------------------------ HTTP plumbing

    def _role(self, authorization: str | None) -> str | None:
        """``None`` for anonymous requests, else the token's role; an unknown token is refused."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        role = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if role is None:
            raise HubHTTPError(401, "Invalid credentials in Authorization header")
        return role

    def _readable(self, repo_id: str, role: str | None) -> dict[str, Any]:
        state = self._require(repo_id)
        if state["private"] and role is None:
            # Like the Hub: a private repo is indistinguishable from a missing one without a token.
            raise HubHTTPError(401, f"Repository not found: {repo_id}", code="RepoNotFound")
        return state

    def _writable(self, repo_id: str | None, role: str | None) -> dict[str, Any] | None:
        if role is None:
            raise HubHTTPError(401, "You must be authenticated with a write token to do this")
        if role != "write":
            raise HubHTTPError(403, "This token has read access only; use a token with write access")
        return self._require(repo_id) if repo_id is not None else None

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> _Response:
        """Answer one request (called by the request handler threads)."""
        url = urlsplit(raw_path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        with self._lock:
            self.requests.append(RecordedRequest(method, url.path, bool(headers.get("Authorization"))))
            try:
                role = self._role(headers.get("Authorization"))
                for route_method, pattern, handler in self._routes:
                    match = pattern.match(url.path)
                    if match and route_method == method:
                        params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                        return handler(role=role, query=query, body=body, headers=headers, **params)
                raise HubHTTPError(404, f"Not found: {method} {url.path}")
            except HubHTTPError as error:
                response = _Response.json({"error": error.message}, status=error.status)
                response.headers.update(error.headers)
                response.headers["X-Error-Message"] = error.message
                if error.code:
                    response.headers["X-Error-Code"] = error.code
                return response

    # ------------------------------------------------------------------ endpoints

    def _resolve(self, *, repo: str, rev: str, path: str, role: str | None, **_: Any) -> _Response:
        state = self._readable(repo, role)
        sha = self._resolve_rev(repo, state, rev)
        oid = state["commits"][sha]["tree"].get(path)
        if oid is None:
            raise HubHTTPError(404, f"Entry not found: {path}", code="EntryNotFound", headers={"X-Repo-Commit": sha})
        return _Response(
            200,
            self._blob(repo, oid),
            {"Content-Type": "application/octet-stream", "ETag": f'"{oid}"', "X-Repo-Commit": sha},
        )

    def _api_model_info(self, *, repo: str, role: str | None, rev: str = "main", **_: Any) -> _Response:
        state = self._readable(repo, role)
        sha = self._resolve_rev(repo, state, rev)
        commit = state["commits"][sha]
        tree = commit["tree"]
        card = _card_data(self._blob(repo, tree["README.md"]) if "README.md" in tree else None) or {}
        owner = repo.split("/")[0]
        return _Response.json(
            {
                "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
                "id": repo,
                "modelId": repo,
                "author": owner,
                "sha": sha,
                "lastModified": commit["date"],
                "createdAt": state["created_at"],
                "private": state["private"],
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": list(card.get("tags") or []),
                "library_name": card.get("library_name"),
                "cardData": card or None,
                "siblings": [
                    {"rfilename": path, "size": len(self._blob(repo, oid)), "blobId": oid} for path, oid in sorted(tree.items())
                ],
            }
        )

    def _api_tree(self, *, repo: str, rev: str, role: str | None, query: Mapping[str, str], path: str = "", **_: Any) -> _Response:
        state = self._readable(repo, role)
        sha = self._resolve_rev(repo, state, rev)
        tree = state["commits"][sha]["tree"]
        recursive = query.get("recursive", "false").lower() == "true"
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        folders = {"/".join(p.split("/")[:i]) for p in tree for i in range(1, p.count("/") + 1)}
        if prefix and prefix[:-1] not in folders:
            raise HubHTTPError(404, f"Entry not found: {path}", code="EntryNotFound", headers={"X-Repo-Commit": sha})

        def listed(entry: str) -> bool:
            rest = entry[len(prefix) :]
            return entry.startswith(prefix) and bool(rest) and (recursive or "/" not in rest)

        entries: list[dict[str, Any]] = [
            {"type": "directory", "oid": hashlib.sha1(f"{sha}:{d}".encode()).hexdigest(), "path": d}
            for d in sorted(folders)
            if listed(d)
        ]
        entries += [
            {"type": "file", "oid": oid, "size": len(self._blob(repo, oid)), "path": p}
            for p, oid in sorted(tree.items())
            if listed(p)
        ]
        return _Response.json(entries)

    def _api_refs(self, *, repo: str, role: str | None, **_: Any) -> _Response:
        state = self._readable(repo, role)
        branches = [
            {"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha} for name, sha in sorted(state["branches"].items())
        ]
        return _Response.json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def _api_create_repo(self, *, role: str | None, body: bytes, **_: Any) -> _Response:
        self._writable(None, role)
        payload = json.loads(body or b"{}")
        if payload.get("type") not in (None, "model"):
            raise HubHTTPError(400, f"The local hub only hosts model repos, got type {payload.get('type')!r}")
        name = payload.get("name")
        if not name or "/" in name:
            raise HubHTTPError(400, f"Invalid repo name {name!r}")
        repo_id = f"{payload.get('organization') or USER_NAME}/{name}"
        url = f"{self.url}/{repo_id}"
        if self._load(repo_id) is not None:
            return _Response.json({"error": "You already created this model repo", "url": url}, status=409)
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self._create(repo_id, private=private)
        return _Response.json({"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    def _api_delete_repo(self, *, role: str | None, body: bytes, **_: Any) -> _Response:
        payload = json.loads(body or b"{}")
        repo_id = f"{payload.get('organization') or USER_NAME}/{payload.get('name')}"
        self._writable(repo_id, role)
        shutil.rmtree(self._repo_dir(repo_id))
        return _Response.json({})

    def _api_validate_yaml(self, *, body: bytes, **_: Any) -> _Response:
        content = json.loads(body or b"{}").get("content", "")
        try:
            _card_data(content.encode())
        except yaml.YAMLError as error:
            return _Response.json({"errors": [{"message": f"Invalid YAML in README.md: {error}"}], "warnings": []}, status=400)
        return _Response.json({"errors": [], "warnings": []})

    def _api_whoami(self, *, role: str | None, **_: Any) -> _Response:
        if role is None:
            raise HubHTTPError(401, "Invalid credentials in Authorization header")
        return _Response.json(
            {
                "type": "user",
                "name": USER_NAME,
                "fullname": "Local Hub user",
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "localhub", "role": role}},
            }
        )

    def _api_agent_harnesses(self, **_: Any) -> _Response:
        # huggingface_hub fetches this registry once per process to tag its User-Agent.
        return _Response.json({"standardEnvVars": [], "harnesses": {}})

    def _api_preupload(self, *, repo: str, rev: str, role: str | None, body: bytes, query: Mapping[str, str], **_: Any) -> _Response:
        state = self._writable(repo, role)
        assert state is not None
        if query.get("create_pr"):
            raise HubHTTPError(400, "The local hub does not support pull requests")
        tree = state["commits"][self._resolve_rev(repo, state, rev)]["tree"]
        files = json.loads(body or b"{}").get("files", [])
        return _Response.json(
            {
                "files": [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": tree.get(f["path"])}
                    for f in files
                ]
            }
        )

    def _api_commit(self, *, repo: str, rev: str, role: str | None, body: bytes, query: Mapping[str, str], **_: Any) -> _Response:
        state = self._writable(repo, role)
        assert state is not None
        if query.get("create_pr"):
            raise HubHTTPError(400, "The local hub does not support pull requests")
        if rev not in state["branches"]:
            raise HubHTTPError(404, f"Invalid rev id: {rev}; commits go to an existing branch", code="RevisionNotFound")
        items = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not items or items[0].get("key") != "header":
            raise HubHTTPError(400, "The commit payload must start with a 'header' line")
        header = items[0]["value"]
        parent = header.get("parentCommit")
        if parent is not None and parent != state["branches"][rev]:
            raise HubHTTPError(412, "A commit has happened since. Please refresh and try again.")
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        deleted_folders: list[str] = []
        for item in items[1:]:
            key, value = item.get("key"), item.get("value", {})
            if key == "file":
                content = value["content"]
                added[value["path"]] = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
            elif key == "deletedFile":
                deleted.append(value["path"])
            elif key == "deletedFolder":
                deleted_folders.append(value["path"])
            else:
                raise HubHTTPError(400, f"Unsupported commit operation {key!r}: the local hub stores files inline only")
        sha = self._commit(
            repo, state, rev, added=added, deleted=deleted, deleted_folders=deleted_folders, message=header.get("summary", "")
        )
        return _Response.json(
            {"success": True, "commitOid": sha, "commitUrl": f"{self.url}/{repo}/commit/{sha}", "hookOutput": "", "pullRequestUrl": None}
        )

    def _api_create_branch(self, *, repo: str, branch: str, role: str | None, body: bytes, **_: Any) -> _Response:
        self._writable(repo, role)
        start = json.loads(body or b"{}").get("startingPoint") or "main"
        self.create_branch(repo, branch, revision=start)
        return _Response.json({})

    def _api_delete_branch(self, *, repo: str, branch: str, role: str | None, **_: Any) -> _Response:
        state = self._writable(repo, role)
        assert state is not None
        if branch == "main":
            raise HubHTTPError(403, "The default branch cannot be deleted")
        if state["branches"].pop(branch, None) is None:
            raise HubHTTPError(404, f"Invalid rev id: {branch}", code="RevisionNotFound")
        self._save(repo, state)
        return _Response.json({})


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], hub: HubServer):
        super().__init__(address, handler)
        self.hub = hub
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Also cut the keep-alive connections clients hold, so a stopped hub is really unreachable."""
        super().server_close()
        with self._open_lock:
            for connection in self._open:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # clients hanging up are normal
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"
    timeout = 5  # close idle keep-alive connections
    server: _HTTPServer

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        response = self.server.hub.handle(self.command, self.path, self.headers, self._read_body())
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass


# ---------------------------------------------------------------------- pytest integration


def point_huggingface_hub_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, home: Path) -> None:
    """Make ``huggingface_hub`` use ``endpoint`` and the HF home ``home`` for the rest of the test.

    ``huggingface_hub.constants`` reads the environment once, at import: this sets ``HF_ENDPOINT`` and
    ``HF_HOME`` (dropping variables that would override them, tokens and offline mode), evaluates a
    fresh copy of the constants module under that environment and monkeypatches every constant whose
    value changed (ENDPOINT, the URL template, HF_HUB_CACHE, HF_TOKEN_PATH, HF_HUB_OFFLINE, ...).
    """
    from huggingface_hub import constants, hf_api

    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(home))
    for name in (
        "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE", "HUGGINGFACE_ASSETS_CACHE", "HF_XET_CACHE",
        "HF_TOKEN_PATH", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE", "HUGGINGFACE_CO_STAGING", "HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    spec = importlib.util.find_spec("huggingface_hub.constants")
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    for name, value in vars(fresh).items():
        if name.isupper() and getattr(constants, name, None) != value:
            monkeypatch.setattr(constants, name, value)
    # `huggingface_hub.create_repo` & co. are methods of an HfApi built at import time.
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)


class LocalHub(HubServer):
    """The :func:`hub_server` fixture's object: a :class:`HubServer` that ``huggingface_hub`` points at."""

    def __init__(self, root: Path, home: Path, monkeypatch: pytest.MonkeyPatch):
        super().__init__(root)
        self.home = home
        self._monkeypatch = monkeypatch

    @property
    def cache_dir(self) -> Path:
        """huggingface_hub's cache folder (``$HF_HOME/hub``)."""
        return self.home / "hub"

    def start(self) -> "LocalHub":
        super().start()
        point_huggingface_hub_at(self._monkeypatch, self.url, self.home)
        return self

    def set_offline(self, offline: bool = True) -> None:
        """Switch huggingface_hub's offline mode (``HF_HUB_OFFLINE``) for the rest of the test."""
        from huggingface_hub import constants

        self._monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
        self._monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)

    def login(self, token: str | None = None) -> None:
        """Set ``HF_TOKEN`` (default: the write token) so calls without an explicit token use it."""
        self._monkeypatch.setenv("HF_TOKEN", token or self.token)


@pytest.fixture
def hub_server(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    """A running :class:`LocalHub` with ``huggingface_hub`` pointed at it and an empty HF_HOME."""
    from huggingface_hub.utils import close_session

    base = tmp_path_factory.mktemp("localhub")
    hub = LocalHub(base / "repos", base / "hf_home", monkeypatch)
    with hub:
        yield hub
    close_session()  # drop pooled keep-alive connections to this server
