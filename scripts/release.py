"""Turn a trained model folder into a zoo release: zoo/<name>/, its Hub repo and its registry entry.

    python scripts/release.py FOLDER --name effnetb0.pbc96 --repo-id bloodcell/effnetb0-pbc96 [--push]
    python scripts/release.py --train ../shared/data/pbc96 --model effnetb0 --name effnetb0.pbc96 \
        --repo-id bloodcell/effnetb0-pbc96 -- --augment robust --head-epochs 40

Steps: (optionally) train with `bloodcell train`; copy config.json and the weights into
`zoo/<name>/` with the name and Hub source written into the config and a regenerated model card;
compute the weights' sha256 (and the config's, for an entry on a branch), size and parameter count; (with --push) upload the folder with
`bloodcell hub push`, which gives the commit sha to pin; print the `PretrainedCfg(...)` to paste
beside the architecture's builder in `bloodcell/models/<family>.py`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", nargs="?", help="a folder written by `bloodcell train` / save_pretrained")
    ap.add_argument("--name", required=True, help="zoo entry name, <architecture>.<tag>")
    ap.add_argument("--repo-id", default=None, help="Hub repo of the entry (omit for a bundled entry)")
    ap.add_argument("--bundled", action="store_true", help="ship the entry inside the package instead")
    ap.add_argument("--push", action="store_true", help="upload zoo/<name> to --repo-id and pin its commit")
    ap.add_argument("--token", default=None)
    ap.add_argument("--zoo-dir", default=str(ROOT / "zoo"), help="where release folders go (default zoo/)")
    ap.add_argument("--train", metavar="DATA", help="train first on DATA (extra train options after --)")
    ap.add_argument("--model", help="architecture to train (with --train)")
    args, train_args = ap.parse_known_args(argv)
    train_args = [a for a in train_args if a != "--"]

    from bloodcell import build_model
    from bloodcell._util import sha256_file
    from bloodcell._preprocessing import PREPROCESSING
    from bloodcell.folder import CONFIG_NAME, WEIGHTS_NAME, read_config, update_config
    from bloodcell.zoo import bundled_path

    if args.train:
        if not args.model:
            ap.error("--train needs --model")
        from bloodcell.cli import main as cli

        out = ROOT / "runs" / args.name
        code = cli(["train", args.train, "--model", args.model, "--out", str(out), *train_args])
        if code:
            return code
        args.folder = str(out)
    if not args.folder:
        ap.error("give a trained FOLDER or --train DATA")
    if not args.bundled and not args.repo_id:
        ap.error("give --repo-id (served from the Hub) or --bundled (shipped in the package)")
    arch, _, tag = args.name.partition(".")
    src = Path(args.folder)
    cfg = read_config(src)
    if cfg["architecture"] != arch or not tag:
        ap.error(f"--name must be {cfg['architecture']}.<tag> for this folder, got {args.name!r}")

    dest = bundled_path(args.name) if args.bundled else Path(args.zoo_dir) / args.name
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / WEIGHTS_NAME, dest / WEIGHTS_NAME)
    shutil.copy2(src / CONFIG_NAME, dest / CONFIG_NAME)
    for extra in ("test_files.json",):
        for candidate in (src / extra, src.with_name(src.name + ".work") / extra):
            if candidate.is_file():
                shutil.copy2(candidate, dest / extra)
                break
    cfg = update_config(dest, lambda c: {**c, "name": args.name, "hub_source": args.name})  # and the card

    sha = sha256_file(dest / WEIGHTS_NAME)
    size = (dest / WEIGHTS_NAME).stat().st_size
    build = dict(cfg["build"])
    params = build_model(arch, **{**build, "weights": None}).count_params()
    revision = None
    if args.push:
        from bloodcell.hub import push_folder

        revision = push_folder(dest, args.repo_id, token=args.token, commit_message=f"Release {args.name}")
    metrics = {k: v for k, v in (cfg.get("metrics") or {}).items() if isinstance(v, float)}
    init = (cfg.get("training") or {}).get("init", "random")
    lines = [
        "PretrainedCfg(",
        f"    name={args.name!r},",
        f"    architecture={arch!r},",
        f"    input_size={cfg['input_size']},",
        *([f"    repo_id={args.repo_id!r},",
           f"    revision={revision!r}," if revision else
           "    revision='main',  # until pushed: pin the commit sha that --push prints"]
          if not args.bundled else ["    bundled=True,"]),
        f"    sha256={sha!r},",
        *([f"    config_sha256={sha256_file(dest / 'config.json')!r},"] if not args.bundled and not revision else []),
        f"    size_bytes={size},",
        f"    num_params={params},",
        f"    init={init!r},",
        # what loading checks against the folder's config.json
        f"    license={cfg.get('license') or 'unknown'!r},",
        *([f"    preprocessing={cfg['preprocessing']!r},"] if cfg.get("preprocessing") != PREPROCESSING else []),
        f"    metrics={metrics!r},",
        ")",
    ]
    print(f"wrote {dest}", file=sys.stderr)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
