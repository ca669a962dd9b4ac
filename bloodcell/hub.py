"""Downloading models from and publishing them to the Hugging Face Hub.

A thin layer over ``huggingface_hub``: downloads go through its cache (``HF_HOME``/``HF_HUB_CACHE``)
and honour ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and tokens (``token=``, ``HF_TOKEN`` or the one saved
by ``hf auth login``) exactly as ``huggingface_hub`` does; it reads those variables when it is
imported. Offline with a warm cache, nothing is sent over the network. Every Hub failure (no such
repo, revision or file; no network; offline with an empty cache; refused token) is raised as one
:class:`~bloodcell.errors.HubError` whose one-line message names the repo and what to do.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator, Optional, Sequence

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    LocalTokenNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from ._util import error_reason, outside_stacklevel, sha256_file
from .errors import ChecksumError, ConfigError, HubError, InputNotFoundError

__all__ = ["HF_PREFIX", "MODEL_FILES", "CONNECT_TIMEOUT", "download_file", "download_snapshot", "parse_hf_source",
           "push_folder"]

HF_PREFIX = "hf://"
MODEL_FILES: tuple[str, ...] = ("config.json", "*.weights.h5", "README.md")
"""Patterns of the files of a folder written by ``save_pretrained`` (config, weights, card): what
``download_snapshot`` fetches by default and a push sends. Of a bloodcell model, both take the one
weights file its config names, never another ``*.weights.h5`` beside it."""

Token = Optional[str | bool]
_COMMIT_SHA = re.compile(r"[0-9a-fA-F]{40}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_LOGIN_HINT = "log in with `hf auth login` or set HF_TOKEN (in Python, token= works too)"


def _client_errors(name: str) -> tuple[type[BaseException], ...]:
    """The exception class ``name`` of the HTTP clients huggingface_hub may use (httpx2 in 2.x)."""
    errors: list[type[BaseException]] = []
    for module in ("httpx2", "httpx"):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


_TRANSPORT_ERRORS = (ConnectionError, TimeoutError, *_client_errors("TransportError"))
_REDIRECT_ERRORS = _client_errors("TooManyRedirects")


def parse_hf_source(source: str) -> tuple[str, str | None]:
    """Split ``hf://owner/repo`` or ``hf://owner/repo@revision`` into ``(repo_id, revision or None)``."""
    if not isinstance(source, str) or not source.startswith(HF_PREFIX):
        raise ConfigError(f"expected a Hub source 'hf://owner/repo[@revision]', got {source!r}")
    repo_id, at, revision = source[len(HF_PREFIX) :].partition("@")
    if at and not revision.strip():
        raise ConfigError(f"Hub source {source!r} has an empty revision after '@'; write hf://{repo_id}@<branch or commit sha>")
    if revision != revision.strip():
        raise ConfigError(f"Hub source {source!r} has spaces around its revision; remove them")
    _check_repo_id(repo_id, source)
    branch, slash, file = revision.rpartition("/")
    if slash and file.lower().endswith((".json", ".h5", ".md", ".keras", ".safetensors")):
        raise ConfigError(f"Hub source {source!r} names a file in the repo; a source is the whole model: "
                          f"hf://{repo_id}@{branch}")
    return repo_id, revision or None


def _check_repo_id(repo_id: str, given: str | None = None) -> None:
    shown = given if given is not None else repo_id
    if given is None and isinstance(repo_id, str) and repo_id.startswith(HF_PREFIX):
        raise ConfigError(f"expected a Hub repo id 'owner/name' (e.g. my-org/bloodcell-effnetb0), got {repo_id!r}; "
                          f"drop the {HF_PREFIX} in front (it marks a source to load from)")
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if len(parts) != 2 or not all(parts):
        example = "hf://my-org/bloodcell-effnetb0" if given is not None else "my-org/bloodcell-effnetb0"
        raise ConfigError(f"expected a Hub repo id 'owner/name' (e.g. {example}), got {shown!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        reason = str(error).splitlines()[0]
        raise ConfigError(f"invalid Hub repo id {repo_id!r} in {shown!r}: {reason}") from None


def _source(repo_id: str, revision: str | None) -> str:
    return f"{HF_PREFIX}{repo_id}" + (f"@{revision}" if revision else "")


#: False while `bloodcell hub download` runs: its errors do not tell it to run itself.
DOWNLOAD_HINTS: ContextVar[bool] = ContextVar("bloodcell_download_hints", default=True)


def _download_hint(repo_id: str, revision: str | None, shown: str | None, when: str = "") -> str:
    """``run `bloodcell hub download SOURCE` while online [when]``, or "" inside that command."""
    if not DOWNLOAD_HINTS.get():
        return ""
    return f"run `bloodcell hub download {shown or _source(repo_id, revision)}` while online" + (f" {when}" if when else "")


def _check_revision(revision, repo_id: str) -> None:
    # "." or ".." parts would be resolved away by the HTTP client (main loaded instead) or name the cache's own folders
    if revision is not None and (not isinstance(revision, str) or not revision.strip()
                                 or any(part in ("", ".", "..") for part in revision.split("/"))):
        raise ConfigError(f"revision: expected a branch name or a 40-character commit sha of Hub repo '{repo_id}', "
                          f"got {revision!r}")


def _weights_named(folder: Path) -> tuple[str, ...]:
    """The weights file a downloaded bloodcell ``config.json`` names (none for other folders)."""
    from ._fs import bloodcell_config

    name = (bloodcell_config(folder / "config.json") or {}).get("weights_file")
    return (name,) if isinstance(name, str) and name and "/" not in name else ()


def _hub_error(
    error: BaseException, repo_id: str, revision: str | None, filename: str | None, writing: bool,
    shown: str | None = None,
) -> HubError | None:
    """The :class:`HubError` describing ``error``, or ``None`` if it is not a Hub failure."""
    endpoint = constants.ENDPOINT
    rev = revision or constants.DEFAULT_REVISION
    what = f"'{filename}' of Hub repo '{repo_id}' at revision '{rev}'" if filename else f"Hub repo '{repo_id}' at revision '{rev}'"
    get_first = _download_hint(repo_id, revision, shown, "before going offline")
    cache = Path(constants.HF_HUB_CACHE)
    if isinstance(error, (PermissionError, NotADirectoryError, FileExistsError)) and getattr(error, "filename", None) \
            and (Path(error.filename) == cache or cache in Path(error.filename).parents or Path(error.filename) in cache.parents):
        return HubError(f"the Hugging Face cache {cache} cannot hold {what} ({error.strerror or error}: {error.filename}); "
                        "set HF_HOME (or HF_HUB_CACHE) to a folder you can write, or fix its permissions")
    if isinstance(error, RevisionNotFoundError):
        return HubError(
            f"revision '{rev}' does not exist in Hub repo '{repo_id}' ({endpoint}); "
            "check the branch name or full 40-character commit sha"
        )
    if isinstance(error, RepositoryNotFoundError):  # also GatedRepoError
        return HubError(
            f"Hub repo '{repo_id}' was not found at {endpoint}, or it is private or gated and no valid token was sent; "
            f"check the repo id, or {_LOGIN_HINT}"
        )
    if isinstance(error, RemoteEntryNotFoundError):
        return HubError(
            f"file '{filename}' does not exist in Hub repo '{repo_id}' at revision '{rev}'; "
            "check the file name (a bloodcell model repo holds config.json and a *.weights.h5 file)"
        )
    if isinstance(error, LocalTokenNotFoundError):
        return HubError(f"no Hugging Face token found for Hub repo '{repo_id}'; {_LOGIN_HINT}")
    if constants.is_offline_mode() and isinstance(error, (OfflineModeIsEnabled, EntryNotFoundError)):
        if writing:
            return HubError(f"cannot push to Hub repo '{repo_id}': offline mode is on (HF_HUB_OFFLINE=1); unset it to upload")
        return HubError(
            f"{what} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and offline mode is on "
            f"(HF_HUB_OFFLINE=1); " + (f"{get_first}, or unset HF_HUB_OFFLINE" if get_first else "unset HF_HUB_OFFLINE")
        )
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        try:
            sent_token = bool(error.response.request.headers.get("authorization"))
        except (AttributeError, RuntimeError):  # a response without its request
            sent_token = False
        if status == 401 and sent_token:
            return HubError(f"the Hub at {endpoint} refused the token sent for '{repo_id}' (HTTP 401): it is invalid or "
                            "expired; fix or unset HF_TOKEN (or the token= or --token you passed), or `hf auth login` again")
        if status in (401, 403):
            action = "write to" if writing else "read"
            need = "a token with write access" if writing else "a token with access to the repo"
            return HubError(f"the Hub at {endpoint} refused to {action} '{repo_id}' (HTTP {status}); {need} is needed: {_LOGIN_HINT}")
        return HubError(
            f"the Hub at {endpoint} answered HTTP {status} for '{repo_id}' ({error_reason(error)}); retry later or check HF_ENDPOINT"
        )
    if _REDIRECT_ERRORS and isinstance(error, _REDIRECT_ERRORS):
        return HubError(
            f"the Hub at {endpoint} redirected the request for {what} in a loop (too many redirects); "
            "check HF_ENDPOINT (it should be the Hub's address, or a mirror that serves files itself)"
        )
    if isinstance(error, (LocalEntryNotFoundError, *_TRANSPORT_ERRORS)):
        cause = error_reason(error.__cause__ or error)
        if writing:
            return HubError(
                f"could not reach the Hugging Face Hub at {endpoint} to push to '{repo_id}' ({cause}); "
                "check your network connection and HF_ENDPOINT"
            )
        return HubError(
            f"could not reach the Hugging Face Hub at {endpoint} for {what} and it is not in the local cache "
            f"({cause}); check your network connection and HF_ENDPOINT" + (f", or {get_first}" if get_first else "")
        )
    return None


#: Seconds to wait for the Hub's host to accept a connection before a download is given up.
CONNECT_TIMEOUT = 3.0


def _unreachable() -> str | None:
    """Why the Hub endpoint's host does not accept a TCP connection within :data:`CONNECT_TIMEOUT`,
    or None when it does.

    huggingface_hub retries a failed request five times with back-off (about 20 s) before it looks
    in its cache; with no network, bloodcell looks there at once instead. Behind a proxy (the
    ``HTTPS_PROXY`` variables) the host is not probed.
    """
    import socket
    import urllib.request
    from urllib.parse import urlsplit

    url = urlsplit(constants.ENDPOINT)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigError(f"HF_ENDPOINT={constants.ENDPOINT!r} is not a URL; write it with its scheme, e.g. "
                          "https://huggingface.co or http://127.0.0.1:8080, or unset it")
    if url.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(url.hostname or ""):
        return None  # through a proxy: only the request itself can tell
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=CONNECT_TIMEOUT):
            return None
    except (socket.timeout, TimeoutError):
        return f"no connection within {CONNECT_TIMEOUT:g} s"
    except OSError as error:
        return f"no connection: {error_reason(error)}"


@contextmanager
def _cache_only_when_unreachable(repo_id: str, revision: str | None, what: str, shown: str | None = None) -> Iterator[bool]:
    """Yield whether downloads must come from the cache (offline mode, or no connection to the
    Hub); a file then missing from the cache is one HubError saying so."""
    unreachable = None if constants.is_offline_mode() else _unreachable()
    try:
        yield constants.is_offline_mode() or unreachable is not None
    except LocalEntryNotFoundError:
        if unreachable is None:
            raise
        raise HubError(
            f"could not reach the Hugging Face Hub at {constants.ENDPOINT} ({unreachable}) "
            f"and {what} of Hub repo '{repo_id}' at revision '{revision or constants.DEFAULT_REVISION}' is not in the "
            f"local cache; check your network connection and HF_ENDPOINT"
            + (f", or {hint}" if (hint := _download_hint(repo_id, revision, shown)) else "")
        ) from None


def _cache_on_failure(fetch, cached: bool):
    """``fetch(local_files_only)``; when the Hub took the connection but the request failed on the
    way (a dropped connection, a broken proxy, a server error), the cached copy if there is one."""
    try:
        return fetch(cached)
    except Exception as error:
        server_error = isinstance(error, HfHubHTTPError) and error.response is not None and error.response.status_code >= 500
        if cached or not (isinstance(error, _TRANSPORT_ERRORS) or server_error):
            raise
        try:
            return fetch(True)
        except LocalEntryNotFoundError:
            raise error from None


@contextmanager
def _hub_errors(repo_id: str, *, revision: str | None = None, filename: str | None = None, writing: bool = False,
                shown: str | None = None) -> Iterator[None]:
    """Hub failures as one :class:`HubError` line; huggingface_hub's own warnings (each retry, each
    resumed download, "no files have been modified") kept off the screen meanwhile."""
    import logging

    hf_logger = logging.getLogger("huggingface_hub")
    level = hf_logger.level
    hf_logger.setLevel(logging.ERROR)
    try:
        yield
    except Exception as error:
        hub_error = _hub_error(error, repo_id, revision, filename, writing, shown)
        if hub_error is None:
            raise
        raise hub_error from error
    finally:
        hf_logger.setLevel(level)


def _tqdm_class():
    """huggingface_hub's progress bars only where a person watches (stderr a terminal), as bloodcell's own:
    in a log or a pipe they are carriage-return noise. None: huggingface_hub's own bars."""
    if sys.stderr.isatty():
        return None
    from huggingface_hub.utils import tqdm as hf_tqdm

    class _Off(hf_tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return _Off


def download_snapshot(
    repo_id: str,
    revision: str | None = None,
    *,
    token: Token = None,
    allow_patterns: Sequence[str] | None = MODEL_FILES,
    required: Sequence[str] = ("config.json",),
) -> Path:
    """Local folder holding the files of ``repo_id`` at ``revision`` (branch or commit sha; default
    ``main``) that match ``allow_patterns`` (all files if ``None``), downloaded into / read from the
    huggingface_hub cache. Raises :class:`HubError` if the Hub cannot provide it or a ``required``
    file is missing from it."""
    _check_repo_id(repo_id)
    _check_revision(revision, repo_id)
    model_files = allow_patterns is MODEL_FILES

    def fetch(local: bool) -> Path:
        def snapshot(rev, patterns):
            return Path(snapshot_download(repo_id, revision=rev, token=token, local_files_only=local,
                                          allow_patterns=list(patterns) if patterns else None, tqdm_class=_tqdm_class()))

        if not model_files:
            return snapshot(revision, allow_patterns)
        # A bloodcell config first, then the one weights file it names, at the same commit (the snapshot's
        # name): other *.weights.h5 files in the repo are not the model's. Other folders: all of MODEL_FILES.
        first = snapshot(revision, ("config.json", "README.md"))
        named = _weights_named(first)
        return snapshot(first.name, ("config.json", "README.md", *named) if named else MODEL_FILES)

    with _hub_errors(repo_id, revision=revision), _cache_only_when_unreachable(repo_id, revision, "the model") as cached:
        folder = _cache_on_failure(fetch, cached)
    # An interrupted download can leave the config without its weights: they are required too.
    weights = [name for name in _weights_named(folder)
               if model_files or allow_patterns is None or any(Path(name).match(pattern) for pattern in allow_patterns)]
    missing = [name for name in (*required, *weights) if not (folder / name).is_file()]
    if missing:
        rev = revision or constants.DEFAULT_REVISION
        if cached:
            why = "offline mode is on (HF_HUB_OFFLINE=1)" if constants.is_offline_mode() else "the Hub could not be reached"
            raise HubError(
                f"the cached copy of Hub repo '{repo_id}' at revision '{rev}' lacks {', '.join(missing)} (an interrupted "
                f"download?) and {why}; " + (_download_hint(repo_id, revision, None, "first") or
                                            "run this command again while online")
            )
        raise HubError(
            f"Hub repo '{repo_id}' at revision '{rev}' has no {', '.join(missing)}; it does not hold a model saved by "
            "bloodcell (save_pretrained / `bloodcell hub push`): check the repo id and revision"
        )
    return folder


def download_file(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    sha256: str | None = None,
    token: Token = None,
    shown_as: str | None = None,
) -> Path:
    """Local path of ``filename`` from ``repo_id`` at ``revision``, via the huggingface_hub cache.

    With ``sha256`` the file's hash is checked (also when it comes from the cache) and a mismatch
    raises :class:`ChecksumError` instead of returning the path. ``shown_as`` is how error hints
    name the source to download (a zoo entry's name; default ``hf://repo@revision``).
    """
    _check_repo_id(repo_id)
    _check_revision(revision, repo_id)
    if not isinstance(filename, str) or not filename.strip():
        raise ConfigError(f"filename: expected the name of a file in Hub repo '{repo_id}' (e.g. 'config.json'), got {filename!r}")
    expected = None
    if sha256 is not None:
        if not _SHA256.fullmatch(sha256):
            raise ConfigError(f"sha256 must be 64 hex characters, got {sha256!r} for '{filename}' of Hub repo '{repo_id}'")
        expected = sha256.lower()
    with _hub_errors(repo_id, revision=revision, filename=filename, shown=shown_as), \
            _cache_only_when_unreachable(repo_id, revision, f"'{filename}'", shown_as) as cached:
        path = Path(_cache_on_failure(
            lambda local: hf_hub_download(repo_id, filename, revision=revision, token=token, local_files_only=local,
                                          tqdm_class=_tqdm_class()),
            cached))
    if expected is not None:
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumError(
                f"'{filename}' of Hub repo '{repo_id}' at revision '{revision or constants.DEFAULT_REVISION}' has sha256 "
                f"{actual}, expected {expected}; refusing to use it: the download is corrupt or the file changed on the "
                f"Hub since it was pinned. Delete {path.resolve()} to download it again; if the same error comes back, "
                f"the repo changed: upgrade bloodcell, or load a revision you trust with hf://{repo_id}@<commit sha>"
            )
    return path


def cached_snapshot_with(repo_id: str, files: dict[str, str]) -> Path | None:
    """A snapshot of ``repo_id`` in the huggingface_hub cache whose files have the given sha256
    (``{filename: sha256}``), or None: what a zoo entry pinned, when its branch has moved on."""
    _check_repo_id(repo_id)
    snapshots = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    for snapshot in sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        if all((snapshot / name).is_file() and sha256_file(snapshot / name) == digest.lower()
               for name, digest in files.items()):
            return snapshot
    return None


def push_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = False,
    token: Token = None,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload the model files of ``folder`` (:data:`MODEL_FILES`) to ``repo_id`` in one commit and
    return that commit's 40-hex sha.

    The repo is created if missing (``private`` applies only then: with it, an existing public repo
    is refused). ``revision`` names the branch to commit to (default ``main``); a missing branch is
    created from ``main`` first. If nothing changed, the sha of the branch's current commit is
    returned. A bloodcell folder whose weights do not match its config is refused before anything
    is sent; a zoo entry's release folder (its config names the entry) goes byte for byte.
    """
    _check_push(folder, repo_id, revision)
    folder = Path(folder)
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="bloodcell-push-") as staged:
        staged = _as_published(folder, Path(staged), f"hf://{repo_id}" + (f"@{revision}" if revision else ""))
        with _hub_errors(repo_id, revision=revision, writing=True):
            if private:
                _refuse_public(api, repo_id)
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision is not None and revision != constants.DEFAULT_REVISION:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=staged,
                revision=revision,
                commit_message=commit_message or f"Upload {folder.name} with bloodcell",
                # The model's own files (the stage holds nothing else), never a subfolder's.
                allow_patterns=sorted(p.name for p in staged.iterdir()),
                ignore_patterns=["*/*"],
            )
    return info.oid


def _check_push(folder, repo_id: str, revision) -> None:
    """Refuse, before anything is saved or sent, a push that could not go through or would publish
    a model nobody can load (weights that do not match the config that describes them)."""
    from .errors import BloodcellError
    from .folder import CONFIG_NAME, bloodcell_config, checked_config

    if not isinstance(folder, (str, os.PathLike)):
        raise ConfigError(f"folder: expected the path of a model folder, got {type(folder).__name__}")
    check_push_target(repo_id, revision)
    folder = Path(folder)
    if folder.is_file():
        raise ConfigError(f"cannot push {str(folder)!r} to the Hub: it is a file, not a model folder; give the folder "
                          "save_pretrained wrote")
    if not folder.is_dir():
        raise InputNotFoundError(f"cannot push {str(folder)!r} to the Hub: no such folder; write one with save_pretrained first")
    config = folder / CONFIG_NAME
    try:  # a corrupt config, or weights that do not match it: a model nobody could load
        if bloodcell_config(config) is not None or (config.is_file() and not _is_json(config)):
            checked_config(folder)
    except BloodcellError as error:
        raise type(error)(f"cannot push {str(folder)!r} to the Hub: {error}") from None


def _is_json(path: Path) -> bool:
    import json

    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


def check_push_target(repo_id: str, revision) -> None:
    """Refuse a repo id or a branch that a push could not commit to."""
    _check_repo_id(repo_id)
    if revision is not None and (not isinstance(revision, str) or not revision.strip() or _COMMIT_SHA.fullmatch(revision)):
        raise ConfigError(f"revision must name a branch to commit to, got {revision!r}; pass a branch name such as 'main' or 'v2'")


def _refuse_public(api: HfApi, repo_id: str) -> None:
    """``private=True`` applies when a repo is created: refuse to upload into a public one."""
    try:
        info = api.repo_info(repo_id)
    except RepositoryNotFoundError:
        return  # created private below (or not readable by this token, which then cannot write it either)
    if not getattr(info, "private", False):
        raise ConfigError(f"Hub repo '{repo_id}' exists and is public, so private=True (--private) cannot apply (it "
                          "applies when a repo is created); make the repo private on the Hub first, push to another "
                          "repo, or drop --private to publish it")


def _as_published(folder: Path, stage: Path, source: str) -> Path:
    """A copy of ``folder``'s model files in ``stage`` whose config and generated card name
    ``source`` as where the model is loaded from; warns (one line each) before publishing a model
    without a licence or one that was never trained."""
    import json
    import shutil
    import warnings

    from .card import is_untrained, render_model_card
    from .folder import CARD_NAME, CONFIG_NAME, bloodcell_config, is_generated_card

    named = _weights_named(folder)  # a bloodcell model's: never a stray *.weights.h5 beside it
    for path in folder.iterdir():
        if path.is_file() and (path.name in (CONFIG_NAME, CARD_NAME, *named) if named else
                               any(Path(path.name).match(pattern) for pattern in MODEL_FILES)):
            shutil.copy2(path, stage / path.name)
    cfg = bloodcell_config(stage / CONFIG_NAME)
    if cfg is None:
        return stage  # not a bloodcell model folder: its files go as they are
    if (cfg.get("license") or "unknown") == "unknown":
        warnings.warn(f"{source}: the model's licence is not recorded, so its card says 'license: unknown'; record it "
                      "(bloodcell train --license ID, or 'license' in config.json) before publishing", UserWarning,
                      stacklevel=outside_stacklevel())
    if is_untrained(cfg):
        warnings.warn(f"{source}: the model's weights (or its output layer) were never trained; publishing them anyway",
                      UserWarning, stacklevel=outside_stacklevel())
    if cfg.get("hub_source") != source and not _is_zoo_release(cfg.get("hub_source"), source):
        cfg["hub_source"] = source
        (stage / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
    if not (stage / CARD_NAME).exists() or is_generated_card(stage / CARD_NAME):
        (stage / CARD_NAME).write_text(render_model_card(cfg, folder.resolve().name))
    return stage


def _is_zoo_release(hub_source, source: str) -> bool:
    """Whether a folder whose config names ``hub_source`` is the release of a zoo entry served from
    the repo of ``source``: its config then goes byte for byte, as the entry pins its sha256."""
    from .registry import list_pretrained, pretrained_entry

    if not isinstance(hub_source, str) or hub_source not in list_pretrained():
        return False
    entry = pretrained_entry(hub_source)
    repo_id, revision = parse_hf_source(source)
    return entry.repo_id == repo_id and (revision or constants.DEFAULT_REVISION) == (entry.revision or constants.DEFAULT_REVISION)
