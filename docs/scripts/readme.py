"""The README's figures, rendered from the models' config.json and benchmarks/results.

The README holds blocks ``<!-- generated: NAME -->`` ... ``<!-- end: NAME -->``; this script
rewrites them (``python docs/scripts/readme.py``), and ``tests/test_docs.py`` fails when the README
differs from what it renders, so no figure there is typed by hand or goes stale.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
RESULTS = REPO / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- generated: ([\w-]+) -->\n)(.*?)(<!-- end: \2 -->)", re.S)


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _load(name: str):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def _augment(command: str) -> str:
    """How a training command augmented, in words."""
    if "--augment " in command:
        return f"the `\"{command.split('--augment ')[1].split()[0]}\"` augmentation"
    if "gpu_train.py" in command:  # scripts/gpu_import.py writes every setting into the command
        return f"the domain and robust augmentations with corruptions at rate {command.split('--corrupt-rate ')[1].split()[0]}"
    return "its own augmentation"


def status() -> str:
    default = _config(REPO / "bloodcell" / "_weights" / "mnv3s.pbc96")
    previous = _config(REPO / "zoo" / "mnv3s.pbc96-0.1")
    effnet = _config(REPO / "zoo" / "effnetb0.pbc96")
    m, pm, em = default["metrics"], previous["metrics"], effnet["metrics"]
    size = (REPO / "bloodcell" / "_weights" / "mnv3s.pbc96" / "model.weights.h5").stat().st_size / 1e6
    soup = default["training"].get("averaged_from") or []
    made = (f"its weights are the average of {len(soup)} fine-tunes of that model (a model soup; "
            + "; ".join(f"{_augment(p.get('command', ''))} on {p.get('hardware', 'unknown hardware')}" for p in soup)
            + ")") if soup else f"{default['training']['epochs_run']['full']} more epochs of training"
    lines = [
        f"**The bundled default (`mnv3s.pbc96`)** is a MobileNetV3Small at 128x128 whose first training was "
        f"from random initialisation on a 2-core CPU; it then got stain normalisation in front and training "
        f"with the `\"domain\"` augmentation, meant for other labs' images, and {made}. "
        f"On the held-out 10% of pbc96 ({m['test_images']:,} images): {_pct(m['accuracy'])} "
        f"accuracy, {_pct(m['macro_f1'])} macro F1, {_pct(m['robustness_mean'])} mean accuracy under the 12 "
        f"corruptions at 5 severities ({size:.1f} MB of weights).",
    ]
    outside = _load("outside")
    if outside:
        rows = {r["model"]: r for r in outside["zero_shot"]}
        if "mnv3s.pbc96" in rows:
            lines.append(f"On BCCD, white cells from another lab that no shipped model saw: "
                         f"{100 * rows['mnv3s.pbc96']['accuracy']:.1f}% zero-shot.")
    ablation = _load("ablation")
    if ablation and "previous" in ablation["variants"]:
        prev = ablation["variants"]["previous"]
        lines.append(f"The previous default (`zoo/mnv3s.pbc96-0.1`): {_pct(pm['accuracy'])} on the same split, "
                     f"{_pct(pm['robustness_mean'])} robustness, {100 * prev['bccd_accuracy']:.1f}% on BCCD.")
    predict = _load("predict")
    if predict:
        lines.append(f"`bloodcell predict` classifies about {predict['bloodcell_predict_files_img_per_s']:.0f} "
                     f"images/s on that CPU (files decoded, the review flag and the out-of-distribution check included; "
                     "`benchmarks/results/predict.json`).")
    lines.append("")
    lines.append(f"**`effnetb0.pbc96`** (its Hub repo `bloodcell/effnetb0-pbc96` is not published yet: `load_classifier('effnetb0.pbc96')` loads the release copy `zoo/effnetb0.pbc96` of a checkout of this repository): an EfficientNetB0 "
                 f"trained from random initialisation on the same CPU and split: {_pct(em['accuracy'])} accuracy, "
                 f"{_pct(em['macro_f1'])} macro F1, {_pct(em['robustness_mean'])} robustness mean. The seed "
                 "report's EfficientNetB0, from ImageNet weights, had 94.65% on its local test set and 81% on the "
                 "course's hidden altered one (its own report's figures).")
    return "\n".join(lines) + "\n"


BLOCKS = {"status": status}


def render(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + BLOCKS[m.group(2)]() + m.group(4), text)


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
    print(f"rendered {', '.join(BLOCKS)} into {README}", file=sys.stderr)
