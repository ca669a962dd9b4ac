"""``bloodcell hub push FOLDER REPO_ID`` and ``bloodcell hub download SOURCE``."""

from __future__ import annotations

from ..errors import InputNotFoundError
from ._common import UsageError

import argparse
import fnmatch
from pathlib import Path

from .. import hub


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "hub",
        help="publish models to the Hugging Face Hub and fill the local cache from it",
        description="Publish a saved model folder to the Hugging Face Hub, or download a model into the "
        "huggingface_hub cache (HF_HOME) so that it loads later with HF_HUB_OFFLINE=1.",
    )
    commands = p.add_subparsers(dest="hub_command", metavar="{push,download}", required=True)

    push = commands.add_parser(
        "push", help="upload a folder written by save_pretrained to a Hub model repo",
        description="Upload a folder written by save_pretrained (its config.json, weights and model card) to a Hub "
        "model repo, after checking the weights against the config; prints the commit to pin.")
    push.add_argument("folder", type=Path, help="folder written by save_pretrained (config.json, *.weights.h5, README.md)")
    push.add_argument("repo_id", help="Hub model repo 'owner/name'; created if missing")
    push.add_argument("--private", action="store_true",
                      help="create the repo private; refused for an existing public repo (make it private on the Hub first)")
    push.add_argument("--revision", help="branch to commit to, created from main if missing (default: main)")
    push.add_argument("--token", help="token with write access (default: HF_TOKEN or the one saved by `hf auth login`)")
    push.add_argument("--message", help="commit message")

    download = commands.add_parser(
        "download", help="download a model into the local Hugging Face cache",
        description="Download a model (a zoo entry or hf://owner/repo) into the huggingface_hub cache and check it, so "
        "that it loads later without a network (HF_HUB_OFFLINE=1).")
    download.add_argument("source", help="hf://owner/repo[@revision] or a zoo entry name (see `bloodcell list`)")
    download.add_argument("--revision", help="branch or commit sha, for hf:// sources (default: main)")
    download.add_argument("--token", help="token for private or gated repos (default: HF_TOKEN or `hf auth login`)")

    p.set_defaults(func=run)


def check_model_folder(folder: Path) -> None:
    """Refuse a folder that does not hold a ``config.json`` and a ``*.weights.h5`` file."""
    if not folder.is_dir():
        raise InputNotFoundError(f"{str(folder)!r} is not a folder; write one with Classifier.save_pretrained(folder) first")
    names = [p.name for p in folder.iterdir() if p.is_file()]
    wanted = {"config.json": "config.json", "*.weights.h5": "a *.weights.h5 weights file"}
    missing = [label for pattern, label in wanted.items() if not fnmatch.filter(names, pattern)]
    if missing:
        raise UsageError(
            f"{str(folder)!r} is missing {' and '.join(missing)}; push a folder written by Classifier.save_pretrained "
            f"(it holds {', '.join(hub.MODEL_FILES)})"
        )


def _push(args: argparse.Namespace) -> int:
    check_model_folder(args.folder)
    sha = hub.push_folder(
        args.folder, args.repo_id, private=args.private, token=args.token, revision=args.revision, commit_message=args.message
    )
    branch = args.revision or "main"
    print(f"pushed {args.folder} to {args.repo_id} (branch {branch}) as commit {sha}")
    print(f"load it with: bloodcell.load_classifier('hf://{args.repo_id}@{sha}')")
    return 0


def _download(args: argparse.Namespace) -> int:
    from ..zoo import HF_PREFIX, is_zoo_name, resolve_download

    if args.source.count("/") == 1 and not args.source.startswith(HF_PREFIX) and not Path(args.source).exists():
        raise UsageError(f"{args.source}: a Hub repo is written hf://{args.source} (a zoo entry has no '/'; "
                         "`bloodcell list` shows them)")
    if Path(args.source).is_dir() and not is_zoo_name(args.source):
        raise UsageError(f"{args.source}: a local folder needs no download; use it as it is (--model {args.source})")
    token = hub.DOWNLOAD_HINTS.set(False)  # an error here never tells the user to run this very command
    try:
        print(resolve_download(args.source, revision=args.revision, token=args.token))
    finally:
        hub.DOWNLOAD_HINTS.reset(token)
    return 0


def run(args: argparse.Namespace) -> int:
    return _push(args) if args.hub_command == "push" else _download(args)
