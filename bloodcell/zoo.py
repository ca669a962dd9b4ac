"""Where a model source's files are: a local folder, a zoo entry (bundled or on the Hub), ``hf://``.

:func:`resolve` turns anything :func:`bloodcell.load_classifier` accepts into a local folder of
the folder format (:mod:`bloodcell.folder`) and, for a zoo name, its :class:`PretrainedCfg`.
"""

from __future__ import annotations

import os
import warnings
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Union

from ._fs import previous_version
from ._util import outside_stacklevel
from ._registry import did_you_mean
from .errors import ChecksumError, ConfigError, HubError, InputNotFoundError, ModelNotFoundError
from .folder import CONFIG_NAME, checked_config, read_config
from .registry import PretrainedCfg, list_models, list_pretrained, pretrained_entry

__all__ = ["bundled_path", "entry_folder", "held_out_by", "images_it_may_have_trained_on", "resolve_download"]

#: The zoo entry that ``load_classifier()`` returns; its files ship inside the package.
DEFAULT_MODEL = "mnv3s.pbc96"

Source = Union[str, os.PathLike, None]
HF_PREFIX = "hf://"
SOURCE_HELP = "a folder written by save_pretrained, hf://owner/repo[@revision] or a zoo name (see `bloodcell list`)"


def bundled_path(name: str) -> Path:
    """The folder inside the installed package that holds a bundled zoo entry."""
    return Path(str(resources.files("bloodcell") / "_weights" / name))


def entry_folder(entry: PretrainedCfg) -> Path:
    """A local folder holding a zoo entry's files: bundled, or downloaded from its Hub repo."""
    if entry.bundled:
        path = bundled_path(entry.name)
        if not (path / CONFIG_NAME).is_file():
            raise ConfigError(
                f"zoo entry {entry.name!r} should ship inside the package at {path}, but it is missing; "
                "reinstall bloodcell"
            )
        return path
    if not entry.repo_id:
        raise ConfigError(f"zoo entry {entry.name!r} has no Hub repo and is not bundled; it cannot be loaded")
    if not entry.published:
        release = release_copy(entry.name)
        if release is not None:  # pinned as a download is: the config here, the weights when loaded
            from ._util import sha256_file

            found = sha256_file(release / CONFIG_NAME)
            if entry.config_sha256 and found != entry.config_sha256.lower():
                raise ChecksumError(f"{release / CONFIG_NAME}: sha256 is {found}, expected {entry.config_sha256} (zoo entry "
                                    f"{entry.name!r}); restore the file from the repository (git checkout -- {release})")
            return release
        raise HubError(f"zoo entry {entry.name!r}: its Hub repo '{entry.repo_id}' is not published yet, so it loads only "
                       f"from a checkout of bloodcell's source, which holds it as zoo/{entry.name}; clone the "
                       "repository and run from there, or use another entry (`bloodcell list`)")
    from .hub import cached_snapshot_with, download_file

    try:
        config = download_file(entry.repo_id, CONFIG_NAME, revision=entry.revision, sha256=entry.config_sha256,
                               shown_as=entry.name)
        download_file(entry.repo_id, entry.filename, revision=entry.revision, sha256=entry.sha256, shown_as=entry.name)
        return config.parent
    except HubError as error:
        release = release_copy(entry.name)
        if release is None:
            raise
        raise HubError(f"{error}; or load the release copy in this checkout of bloodcell: {release}") from None
    except ChecksumError:
        pinned = {name: digest for name, digest in ((CONFIG_NAME, entry.config_sha256), (entry.filename, entry.sha256))
                  if digest}
        kept = cached_snapshot_with(entry.repo_id, pinned)
        if kept is None:
            raise
        warnings.warn(f"{entry.name}: the files of Hub repo '{entry.repo_id}' at revision '{entry.revision or 'main'}' "
                      f"differ from the ones this bloodcell release pinned; using the cached copy that matches them "
                      f"({kept}); upgrade bloodcell for the repo's current files", UserWarning,
                      stacklevel=outside_stacklevel())
        return kept


def release_copy(name: str) -> Optional[Path]:
    """The release folder ``zoo/<name>`` of a checkout of bloodcell (the working directory's, or the
    one this package runs from), or None."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        folder = root / "zoo" / name
        if (folder / CONFIG_NAME).is_file():
            return folder.relative_to(Path.cwd()) if folder.is_relative_to(Path.cwd()) else folder
    return None


def check_entry(entry: PretrainedCfg, cfg: dict[str, Any]) -> None:
    """Refuse a zoo entry whose files describe another model than its metadata does."""
    declared = {"architecture": entry.architecture, "input_size": entry.input_size,
                "class_names": tuple(entry.class_names), "preprocessing": dict(entry.preprocessing),
                "license": entry.license}
    found = {"architecture": cfg["architecture"], "input_size": cfg["build"].get("input_size", cfg.get("input_size")),
             "class_names": tuple(cfg["class_names"]), "preprocessing": cfg.get("preprocessing"),
             "license": cfg.get("license")}
    if entry.sha256 and cfg.get("weights_sha256"):
        declared["weights_sha256"], found["weights_sha256"] = entry.sha256.lower(), cfg["weights_sha256"].lower()
    wrong = [k for k in declared if declared[k] != found[k]]
    if wrong:
        raise ConfigError(
            f"zoo entry {entry.name!r}: its config.json has {', '.join(f'{k}={found[k]!r}' for k in wrong)}, "
            f"the entry declares {', '.join(f'{k}={declared[k]!r}' for k in wrong)}; fix the entry in "
            f"bloodcell/models/ or the release folder"
        )


def is_path_like(source) -> bool:
    """Whether ``source`` is written as a path (rather than a zoo name or an ``hf://`` source)."""
    if isinstance(source, os.PathLike):
        return True
    text = str(source)
    return not text.startswith(HF_PREFIX) and (os.sep in text or "/" in text or text.startswith("."))


def is_zoo_name(name: str) -> bool:
    """Whether ``name`` names a zoo entry (or an architecture that has one)."""
    return name in list_pretrained() or name in list_models(pretrained=True)


def _hub_source_meant(text: str) -> Optional[str]:
    """``hf://owner/repo[@revision]`` for a Hub source written otherwise (``HF://``, ``hf:/``, spaces
    around it, a huggingface.co address), else None."""
    import re

    match = re.fullmatch(r"\s*(?:hf:/*|https?://(?:www\.)?huggingface\.co/)([\w.-]+/[\w.-]+?)(?:/tree/([\w./-]+?))?"
                         r"(?:@([\w./-]+))?/?\s*", text, flags=re.IGNORECASE)
    if match is None or text.startswith(HF_PREFIX):
        return None
    revision = match.group(3) or match.group(2)
    return f"{HF_PREFIX}{match.group(1)}" + (f"@{revision}" if revision else "")


def resolve(source: Source, *, token: Optional[str] = None, default: str) -> tuple[Path, Optional[PretrainedCfg]]:
    """The local folder of ``source`` and its zoo entry (None unless ``source`` is a zoo name).

    ``source``: None (``default``), a local folder, ``hf://owner/repo[@revision]`` or a zoo name.
    """
    named = source is not None
    if source is None:
        source = default
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"source: expected None, {SOURCE_HELP}, got {type(source).__name__}")
    text = os.fspath(source)
    if not text.strip():
        raise ConfigError(f"source: empty; pass {SOURCE_HELP}")
    if isinstance(source, str) and text.startswith(HF_PREFIX):
        from .hub import download_snapshot, parse_hf_source

        repo_id, revision = parse_hf_source(text)
        return checked_download(text, download_snapshot(repo_id, revision, token=token)), None
    path = Path(text)
    if is_path_like(source):
        path = previous_version(path) or path  # a save killed between its two renames left it aside
    elif is_zoo_name(text):  # a zoo name means the zoo's files, whatever folder the working directory holds
        if named and path.is_dir():
            warnings.warn(f"{text}: loading the zoo entry; for the folder {text} here, write ./{text}",
                          UserWarning, stacklevel=3)
        entry = pretrained_entry(text)
        return entry_folder(entry), entry
    if path.is_dir():
        return path, None
    if path.is_file():
        raise ConfigError(f"{source}: is a file, not a model folder; pass {SOURCE_HELP}")
    meant = _hub_source_meant(text)
    if meant is not None:
        raise InputNotFoundError(f"{source}: no such folder; a Hub repo is written {meant}")
    if is_path_like(source):
        raise InputNotFoundError(f"{source}: no such folder; pass {SOURCE_HELP}")
    if text in list_models():  # an architecture without weights (is_zoo_name took those with)
        pretrained_entry(text)  # raises: it has no weights, and how to train it
    raise ModelNotFoundError(f"{text}: neither a zoo entry nor a folder here; zoo entries: "
                             f"{', '.join(list_pretrained())} (`bloodcell list`)"
                             + (did_you_mean(text, list_pretrained() + list_models(pretrained=True))
                                or "; for a folder, give its path"))


def checked_download(source: str, folder: Path) -> Path:
    """``folder``, the download of the Hub source ``source``, once it holds a model bloodcell can load:
    a config that is not one, or weights other than those it records, is the repo's fault (one
    HubError naming ``source``); a cached file damaged since it was downloaded, the cache's."""
    import hashlib

    from ._util import sha256_file

    try:
        checked_config(folder)
    except ChecksumError:
        weights = folder / read_config(folder)["weights_file"]
        # The cache names a downloaded file by the hash the Hub gave for it (sha256 of a large file, git's
        # blob sha1 of others): a file that still has it is the repo's own, and its config records another.
        data = weights.read_bytes()
        served = (sha256_file(weights), hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())
        if weights.resolve().name not in served:
            raise
        raise HubError(f"{source}: its config.json records another sha256 for {weights.name} than the file the repo "
                       "holds, so the repo is inconsistent; ask its owner to push the model again, or load another "
                       "revision") from None
    except ConfigError as error:
        reason = str(error).split(": ", 1)[-1] if str(error).startswith(str(folder)) else str(error)
        raise HubError(f"{source}: does not hold a model bloodcell can load ({reason.split('; ')[0]}); check the "
                       "source, ask the repo's owner, or load another revision") from None
    return folder


def resolve_download(source: str, *, revision: Optional[str] = None, token=None) -> Path:
    """Fill the cache for ``source`` — ``hf://owner/repo[@revision]`` or a zoo entry name — and return
    the local folder. ``revision`` overrides the source's revision for ``hf://`` sources; zoo
    entries are pinned, so a different ``revision`` is refused (``token`` applies to ``hf://`` only:
    zoo repos are public)."""
    from .hub import download_snapshot, parse_hf_source

    if not isinstance(source, str):
        raise ConfigError(f"source: expected 'hf://owner/repo[@revision]' or a zoo entry name (a string), got "
                          f"{type(source).__name__} {source!r}")
    if source.startswith(HF_PREFIX):
        repo_id, source_revision = parse_hf_source(source)
        if revision and source_revision and revision != source_revision:
            raise ConfigError(f"{source!r} names revision {source_revision!r} but --revision is {revision!r}; give only one")
        # a damaged download fails here, not later offline
        return checked_download(source, download_snapshot(repo_id, revision or source_revision, token=token))
    entry = pretrained_entry(source)
    if revision and entry.bundled:
        raise ConfigError(
            f"zoo entry {entry.name!r} ships inside the bloodcell package and has no Hub revisions; "
            "drop --revision (the command then prints the package folder)"
        )
    if revision and revision != entry.revision:
        raise ConfigError(
            f"zoo entry {entry.name!r} is pinned to revision {entry.revision!r} of {entry.repo_id!r}; "
            f"to fetch another revision use hf://{entry.repo_id}@{revision}"
        )
    return entry_folder(entry)


def held_out_by(source: Source) -> set[str]:
    """The images (paths relative to its data, class folders by their canonical names) that the model
    ``source`` (None: the default) lists as held out from its training (its folder's ``test_files.json``); empty when it
    lists none."""
    import json

    from ._classes import class_path
    from ._fs import TEST_FILES

    folder, _ = resolve(source, default=DEFAULT_MODEL)
    try:
        listed = json.loads((folder / TEST_FILES).read_text())
    except (OSError, ValueError):
        return set()
    return {class_path(str(p)) for p in listed} if isinstance(listed, list) else set()


#: Images of a data set among a model's held-out list, by path, that make the set taken for that model's data.
SEEN_MIN = 5


def images_it_may_have_trained_on(source: Source, data, root, measured) -> tuple[int, int]:
    """When ``data`` (a Dataset loaded from the folder ``root``) looks like the data the model ``source``
    was made from, (how many of the ``measured`` images, a part of ``data``, are not among the images
    it held out, how many of those ``data`` holds): figures measured on the first may overstate, as the
    model may have trained on them. (0, 0) when ``data`` holds fewer than :data:`SEEN_MIN` (and 2%)
    of its held-out images, or nothing is known of them."""
    from ._classes import class_path
    from ._fs import relative_path

    held = held_out_by(source)
    if not held or not data.paths or not measured.paths:
        return 0, 0
    rel = {p: class_path(str(relative_path(p, root))) for p in data.paths}
    shared = held.intersection(rel.values())
    others = sum(1 for p in measured.paths if rel.get(p) not in held)
    return (others, len(shared)) if len(shared) >= max(SEEN_MIN, 0.02 * len(data)) and others else (0, 0)
