"""Publish a classifier to the Hugging Face Hub, load it back by revision, and use it offline.

    HF_TOKEN=hf_... python examples/hub.py --repo-id you/bloodcell-demo          # the real Hub
    python examples/hub.py --repo-id you/m --endpoint https://hub.example.org     # a Hub mirror
    python examples/hub.py --tiny                                                 # a local test Hub

``--tiny`` starts the Hub-compatible test server of ``tests/hub_server.py`` on 127.0.0.1 (needs
pytest, from ``pip install ".[dev]"``) with an empty ``HF_HOME``, so nothing leaves the machine.
The offline step runs ``bloodcell predict`` in a new process with ``HF_HUB_OFFLINE=1`` after the
server was stopped: the model comes from the local cache alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, SAMPLE_IMAGES, parser, run


def start_local_hub(folder: Path):
    """Start the test Hub in a thread and point huggingface_hub at it (before it is imported)."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from hub_server import WRITE_TOKEN, HubServer
    except ModuleNotFoundError as missing:  # the test server uses pytest, which `pip install .` does not bring
        sys.exit(f"hub.py: error: --tiny runs the local test Hub, which needs {missing.name}: "
                 f"pip install \".[dev]\" (or pip install {missing.name})")

    hub = HubServer(folder / "repos").start()
    os.environ.update(HF_ENDPOINT=hub.url, HF_HOME=str(folder / "hf_home"), HF_TOKEN=WRITE_TOKEN)
    os.environ.pop("HF_HUB_OFFLINE", None)
    return hub


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--repo-id", default=None, help="Hub model repo 'owner/name' to publish to (created if missing)")
    p.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT or https://huggingface.co)")
    p.add_argument("--model", default=None, help="what to publish: zoo name or folder (default: the bundled model)")
    args = p.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bloodcell-hub-")
    hub = None
    if args.tiny:
        hub = start_local_hub(Path(tmp.name))
        args.repo_id = args.repo_id or "demo-user/bloodcell-mnv3s"
        print(f"local test Hub at {hub.url}, HF_HOME in a temporary folder")
    elif not args.repo_id:
        p.error("give --repo-id owner/name (and a write token in HF_TOKEN), or --tiny")
    if args.endpoint:
        os.environ["HF_ENDPOINT"] = args.endpoint  # huggingface_hub reads it when first imported
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    import numpy as np
    from huggingface_hub import ModelCard

    import bloodcell
    from bloodcell.zoo import resolve_download

    # 1. Publish: config.json, the weights and a model card with the eval results, in one commit.
    clf = bloodcell.load_classifier(args.model)
    sha = clf.push_to_hub(args.repo_id, commit_message="Upload from examples/hub.py")
    source = f"hf://{args.repo_id}@{sha}"
    print(f"pushed {clf.name} to {args.repo_id}: commit {sha}")

    # 2. The card's YAML metadata, as the Hub (and huggingface_hub's ModelCard) read it.
    card = ModelCard.load(args.repo_id)
    results = card.data.eval_results or []
    print(f"card: library {card.data.library_name}, license {card.data.license}, "
          + ", ".join(f"{r.metric_name} {r.metric_value}" for r in results))

    # 3. Load it back, pinned to that commit: same probabilities as the original.
    loaded = bloodcell.load_classifier(source)
    files = sorted(SAMPLE_IMAGES.glob("*.jpg"))
    diff = np.abs(loaded.predict_proba(files) - clf.predict_proba(files)).max()
    print(f"loaded {source}: max probability difference {diff:.1e}")

    # 4. Before going offline: fill the cache (what `bloodcell hub download SOURCE` does).
    print(f"cached in {resolve_download(source)}")
    if hub is not None:
        hub.stop()  # from here on the Hub cannot be reached at all

    # 5. Offline: a new process with HF_HUB_OFFLINE=1 loads from the cache, no network request.
    cmd = [sys.executable, "-m", "bloodcell", "predict", files[0].name, "--model", source]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=SAMPLE_IMAGES)
    print(f"offline: bloodcell predict {files[0].name} --model {source}\n  exit {proc.returncode}: {proc.stdout.strip()}")
    if proc.returncode:
        print(proc.stderr, file=sys.stderr)
    tmp.cleanup()
    sys.exit(proc.returncode)


if __name__ == "__main__":
    run(main)
