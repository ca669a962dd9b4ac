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

HF_PREFIX = "hf://"
MODEL_FILES: tuple[str, ...] = ("config.json", "*.weights.h5", "README.md")
"""Patterns of the files of a folder written by ``save_pretrained``; what ``download_snapshot`` fetches."""

Token = Optional[str | bool]
_COMMIT_SHA = re.compile(r"[0-9a-fA-F]{40}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_LOGIN_HINT = "log in with `hf auth login`, set HF_TOKEN or pass a token"


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


def _hub_error(
    error: BaseException, repo_id: str, revision: str | None, filename: str | None, writing: bool
) -> HubError | None:
    """The :class:`HubError` describing ``error``, or ``None`` if it is not a Hub failure."""
    endpoint = constants.ENDPOINT
    rev = revision or constants.DEFAULT_REVISION
    what = f"'{filename}' of Hub repo '{repo_id}' at revision '{rev}'" if filename else f"Hub repo '{repo_id}' at revision '{rev}'"
    get_first = f"run `bloodcell hub download {_source(repo_id, revision)}` while online before going offline"
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
            f"(HF_HUB_OFFLINE=1); {get_first}, or unset HF_HUB_OFFLINE"
        )
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        try:
            sent_token = bool(error.response.request.headers.get("authorization"))
        except (AttributeError, RuntimeError):  # a response without its request
            sent_token = False
        if status == 401 and sent_token:
            return HubError(f"the Hub at {endpoint} refused the token sent for '{repo_id}' (HTTP 401): it is invalid or "
                            "expired; fix or unset HF_TOKEN (or the token= you passed), or `hf auth login` again")
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
            f"({cause}); check your network connection and HF_ENDPOINT, or {get_first}"
        )
    return None


#: Seconds to wait for the Hub's host to accept a connection before a download is given up.
CONNECT_TIMEOUT = 3.0


def _reachable() -> bool:
    """Whether the Hub endpoint's host accepts a TCP connection within :data:`CONNECT_TIMEOUT`.

    huggingface_hub retries a failed request five times with back-off (about 20 s) before it looks
    in its cache; with no network, bloodcell looks there at once instead. Behind a proxy (the
    ``HTTPS_PROXY`` variables) the host is not probed.
    """
    import socket
    import urllib.request
    from urllib.parse import urlsplit

    url = urlsplit(constants.ENDPOINT)
    if url.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(url.hostname or ""):
        return True  # through a proxy: only the request itself can tell
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


@contextmanager
def _cache_only_when_unreachable(repo_id: str, revision: str | None, what: str) -> Iterator[bool]:
    """Yield whether downloads must come from the cache (offline mode, or no connection to the
    Hub); a file then missing from the cache is one HubError saying so."""
    unreachable = not constants.is_offline_mode() and not _reachable()
    try:
        yield constants.is_offline_mode() or unreachable
    except LocalEntryNotFoundError:
        if not unreachable:
            raise
        raise HubError(
            f"could not reach the Hugging Face Hub at {constants.ENDPOINT} (no connection within {CONNECT_TIMEOUT:g} s) "
            f"and {what} of Hub repo '{repo_id}' at revision '{revision or constants.DEFAULT_REVISION}' is not in the "
            f"local cache; check your network connection and HF_ENDPOINT, or run `bloodcell hub download "
            f"{_source(repo_id, revision)}` while online"
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
def _hub_errors(repo_id: str, *, revision: str | None = None, filename: str | None = None, writing: bool = False) -> Iterator[None]:
    """Hub failures as one :class:`HubError` line; huggingface_hub's own warnings (each retry, each
    resumed download, "no files have been modified") kept off the screen meanwhile."""
    import logging

    hf_logger = logging.getLogger("huggingface_hub")
    level = hf_logger.level
    hf_logger.setLevel(logging.ERROR)
    try:
        yield
    except Exception as error:
        hub_error = _hub_error(error, repo_id, revision, filename, writing)
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
    with _hub_errors(repo_id, revision=revision), _cache_only_when_unreachable(repo_id, revision, "the model") as cached:
        folder = Path(_cache_on_failure(
            lambda local: snapshot_download(repo_id, revision=revision, token=token, local_files_only=local,
                                            allow_patterns=list(allow_patterns) if allow_patterns else None,
                                            tqdm_class=_tqdm_class()), cached))
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        rev = revision or constants.DEFAULT_REVISION
        if constants.is_offline_mode():
            raise HubError(
                f"the cached copy of Hub repo '{repo_id}' at revision '{rev}' lacks {', '.join(missing)} and offline mode is on "
                f"(HF_HUB_OFFLINE=1); run `bloodcell hub download {_source(repo_id, revision)}` while online first"
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
) -> Path:
    """Local path of ``filename`` from ``repo_id`` at ``revision``, via the huggingface_hub cache.

    With ``sha256`` the file's hash is checked (also when it comes from the cache) and a mismatch
    raises :class:`ChecksumError` instead of returning the path.
    """
    _check_repo_id(repo_id)
    expected = None
    if sha256 is not None:
        if not _SHA256.fullmatch(sha256):
            raise ConfigError(f"sha256 must be 64 hex characters, got {sha256!r} for '{filename}' of Hub repo '{repo_id}'")
        expected = sha256.lower()
    with _hub_errors(repo_id, revision=revision, filename=filename), \
            _cache_only_when_unreachable(repo_id, revision, f"'{filename}'") as cached:
        path = Path(_cache_on_failure(
            lambda local: hf_hub_download(repo_id, filename, revision=revision, token=token, local_files_only=local,
                                          tqdm_class=_tqdm_class()),
            cached))
    if expected is not None:
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumError(
                f"'{filename}' of Hub repo '{repo_id}' at revision '{revision or constants.DEFAULT_REVISION}' has sha256 "
                f"{actual}, expected {expected}; refusing to use it: the file changed on the Hub or the download is "
                f"corrupt (delete {path.resolve()} to download it again, or fix the pinned sha256)"
            )
    return path


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

    The repo is created if missing (``private`` applies only then). ``revision`` names the branch to
    commit to (default ``main``); a missing branch is created from ``main`` first. If nothing changed,
    the sha of the branch's current commit is returned.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputNotFoundError(f"cannot push {str(folder)!r} to the Hub: no such folder; write one with save_pretrained first")
    _check_repo_id(repo_id)
    if revision is not None and (not revision.strip() or _COMMIT_SHA.fullmatch(revision)):
        raise ConfigError(f"revision must name a branch to commit to, got {revision!r}; pass a branch name such as 'main' or 'v2'")
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="bloodcell-push-") as staged:
        staged = _as_published(folder, Path(staged), f"hf://{repo_id}" + (f"@{revision}" if revision else ""))
        with _hub_errors(repo_id, revision=revision, writing=True):
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision is not None and revision != constants.DEFAULT_REVISION:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=staged,
                revision=revision,
                commit_message=commit_message or f"Upload {folder.name} with bloodcell",
                # The model's own files, never notes, staging leftovers or subfolders: an allow pattern
                # alone also matches a file of that name in a subfolder ("*" matches "/" here).
                allow_patterns=list(MODEL_FILES),
                ignore_patterns=["*/*"],
            )
    return info.oid


def _as_published(folder: Path, stage: Path, source: str) -> Path:
    """A copy of ``folder``'s model files in ``stage`` whose config and generated card name
    ``source`` as where the model is loaded from; warns (one line each) before publishing a model
    without a licence or one that was never trained."""
    import json
    import shutil
    import warnings

    from .card import is_untrained, render_model_card
    from .folder import CARD_NAME, CONFIG_NAME, bloodcell_config, is_generated_card

    for path in folder.iterdir():
        if path.is_file() and any(Path(path.name).match(pattern) for pattern in MODEL_FILES):
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
    if cfg.get("hub_source") != source:
        cfg["hub_source"] = source
        (stage / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
        if not (stage / CARD_NAME).exists() or is_generated_card(stage / CARD_NAME):
            (stage / CARD_NAME).write_text(render_model_card(cfg, folder.resolve().name))
    return stage
