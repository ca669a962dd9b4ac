"""Model cards: the README.md written beside every saved model, with Hub YAML metadata.

The YAML header is produced by huggingface_hub's ``ModelCardData`` (so the Hub parses its
``model-index`` exactly as it parses cards written by other libraries).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Optional

from huggingface_hub import EvalResult, ModelCardData

from ._classes import class_changes

__all__ = ["CARD_METRICS", "render_model_card", "untrained_classes"]

#: What a calibration record's ``fitted_on`` says when no temperature was fitted (every image right) or
#: when the fit stopped at the edge of its range: written by bloodcell.calibration, read here and by train.
TEMPERATURE_KEPT = "so no temperature was fitted"
EDGE_OF_RANGE = "the fit stopped at the edge of its range"

#: Metric keys of a config's ``metrics`` that go into the card's ``model-index``, with display names.
CARD_METRICS = {
    "accuracy": ("accuracy", "Accuracy"),
    "macro_f1": ("f1", "Macro F1"),
    "balanced_accuracy": ("balanced_accuracy", "Balanced accuracy"),
    "robustness_mean": ("accuracy", "Mean accuracy under corruptions"),
}

PBC_CITATION = (
    "Acevedo A., Merino A., Alférez S., Molina Á., Boldú L., Rodellar J. A dataset of microscopic "
    "peripheral blood cell images for development of automatic recognition systems. Data in Brief "
    "30, 105474 (2020). doi:10.17632/snkd93bnjr.1"
)


#: Metrics measured on corrupted copies of the test images: a dataset of their own in the
#: card's ``model-index``, so Hub widgets do not show them as a second clean accuracy.
CORRUPTED_METRICS = {"robustness_mean"}


def _plain_name(name: str) -> str:
    """A data set's name without case or punctuation ("PBC-96" and "pbc96" name the same)."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _card_data(config: dict[str, Any], name: str) -> ModelCardData:
    metrics = config.get("metrics") or {}
    dataset_type = config.get("dataset_id") or "unknown"
    dataset_name = config.get("dataset_name") or "unknown data set"
    split = "cross-validation" if "cross_validation_folds" in metrics else "test"
    evaluated = config.get("eval_dataset")  # written by `evaluate --write-metrics`
    if isinstance(evaluated, dict):
        measured = str(evaluated.get("name") or "")
        if measured and _plain_name(measured) not in (_plain_name(dataset_type), _plain_name(dataset_name)):
            dataset_type = dataset_name = measured  # measured on other data than it was trained on
        split = str(evaluated.get("split") or split)
    results = [
        EvalResult(
            task_type="image-classification",
            task_name="Blood cell classification",
            dataset_type=f"{dataset_type}-corrupted" if key in CORRUPTED_METRICS else dataset_type,
            dataset_name=f"{dataset_name}, 12 corruptions x 5 severities" if key in CORRUPTED_METRICS else dataset_name,
            dataset_split=split,
            metric_type=metric_type,
            metric_name=display,
            metric_value=round(float(metrics[key]), 4),
        )
        for key, (metric_type, display) in CARD_METRICS.items()
        if key in metrics
    ]
    return ModelCardData(
        library_name="bloodcell",
        license=config.get("license") or "unknown",
        tags=["image-classification", "keras", "bloodcell", "blood-cells", "haematology", config["architecture"]],
        datasets=[config["dataset_id"]] if config.get("dataset_id") else None,
        pipeline_tag="image-classification",
        model_name=name,
        eval_results=results or None,
    )


def new_head_untrained(training: dict[str, Any]) -> bool:
    """Whether a model's ``training`` record is that of a new head on another model
    (``init_from``) that no training has run on since (``load_classifier(..., class_names=...)``)."""
    return bool(training.get("init_from")) and not ({"epochs_run", "command"} & set(training))


def untrained_classes(config: dict[str, Any]) -> list[str]:
    """The classes of a model (its ``config.json`` dict) whose output units no training has run on:
    those a new head (:func:`new_head_untrained`) added to the classes its parent had."""
    training = config.get("training") or {}
    if not new_head_untrained(training):
        return []
    parent = training["init_from"]
    return list(class_changes(parent.get("class_names") or [], config["class_names"]).get("new_classes", []))


def is_untrained(config: dict[str, Any]) -> bool:
    """Whether a model's ``config.json`` holds weights never trained: a new model, or output units
    of classes a new head added (:func:`untrained_classes`)."""
    training = config.get("training") or {}
    return bool(untrained_classes(config)) or (training.get("init") is None and not config.get("metrics"))


def render_model_card(config: dict[str, Any], folder_name: Optional[str] = None) -> str:
    """The README.md text for a saved model described by its ``config.json`` dict; a model
    without a ``name`` is titled by ``folder_name`` (the folder it is saved in), else its architecture."""
    name = config.get("name") or folder_name or config["architecture"]
    metrics = config.get("metrics") or {}
    training = config.get("training") or {}
    side = config.get("input_size") or (config.get("build") or {}).get("input_size")
    lines = ["---", _card_data(config, name).to_yaml(), "---", "", f"# {name}", ""]
    lines.append(
        f"A [bloodcell](https://github.com/bloodcell/bloodcell) classifier of single peripheral blood cell "
        f"images: architecture `{config['architecture']}`, input {side}x{side} "
        f"RGB (uint8, 0..255), {len(config['class_names'])} classes."
    )
    lines.append("")
    init = training.get("init")
    on = f" on {training['hardware']}" if training.get("hardware") else ""
    dist = training.get("distribution") or {}
    if dist.get("processes", 1) > 1:
        on = (f" on {dist['processes']} processes with {dist['devices']} devices in all (Keras on {dist['backend']}"
              + (f"; process 0 on {training['hardware']})" if training.get("hardware") else ")"))
    elif dist.get("backend") not in (None, "tensorflow"):
        on += f" (Keras on {dist['backend']})"
    parent = training.get("init_from") or {}
    soup_parent = str(parent.get("init", "")).startswith("the weight average")  # averaged, not trained
    if soup_parent:
        origin = f", itself {parent['init']}"
    else:
        origin = (f", itself trained from {'random initialisation' if parent.get('init') == 'random' else parent['init']}"
                  + (f" on {parent['hardware']}" if parent.get("hardware") else "")) if parent.get("init") else ""
    if init == "random":
        lines += [f"**Trained from random initialisation{on}** (no ImageNet weights).", ""]
    elif training.get("averaged_from"):
        lines += [f"**The weight average (a model soup) of {len(training['averaged_from'])} bloodcell models**"
                  + (f" fine-tuned from `{parent['source']}`{origin}" if parent.get("source") else "") + ":", ""]
        lines += [f"- `{p['source']}`" + (f": `{p['command']}`" if p.get("command") else "")
                  + (f" ({p['hardware']})" if p.get("hardware") else "") for p in training["averaged_from"]]
        lines.append("")
    elif parent:
        size = f" at {parent['input_size']}x{parent['input_size']}" if parent.get("input_size") else ""
        untrained = untrained_classes(config)
        then = (f"; the output units of {', '.join(untrained)} are new and not trained yet (train them with "
                "`bloodcell.Trainer(weights=...)` or `bloodcell train DATA --init FOLDER`)." if untrained else
                "; its output layer keeps the parent's trained units of these classes (no training since)."
                if new_head_untrained(training) else f"; then trained{on}.")
        lines += [f"**Initialised from the bloodcell model `{parent.get('source')}`**{size}{origin}{then}", ""]
        if parent.get("new_classes") or parent.get("dropped_classes"):
            shared = len(config["class_names"]) > len(parent.get("new_classes") or [])
            lines += [f"It had the classes {', '.join(parent.get('class_names', []))}; this model has a new output "
                      f"layer for its own classes (new: {', '.join(parent.get('new_classes') or []) or 'none'}; "
                      f"dropped: {', '.join(parent.get('dropped_classes') or []) or 'none'})"
                      + (", the units of the classes both share starting from the parent's." if shared else
                         ", all of them new."), ""]
        if parent.get("command"):
            lines += [f"The starting model was {'made' if soup_parent else 'trained'} with `{parent['command']}`"
                      + (f" ({parent['wall_time_s']} s)." if parent.get("wall_time_s") else "."), ""]
    elif init:
        lines += [f"**Backbone initialised from ImageNet weights**, then trained{on}.", ""]
    elif is_untrained(config):
        lines += ["**Untrained**: this card belongs to a model whose weights have not been trained yet.", ""]
    lines += ["## Classes", "", ", ".join(f"{i} `{c}`" for i, c in enumerate(config["class_names"])), ""]
    if training.get("classes_without_training_images"):
        lines += [f"**Warning:** no training images of {', '.join(training['classes_without_training_images'])}: "
                  "the model can answer these classes but never learnt them.", ""]
    lines += ["## Preprocessing", ""]
    for key, value in (config.get("preprocessing") or {}).items():
        lines.append(f"- {key}: {value}")
    lines.append("")
    if metrics:
        lines += ["## Evaluation", "", f"Measured on {config.get('eval_data', 'held-out data')}.", "", "| metric | value |", "| --- | --- |"]
        for key, value in metrics.items():
            lines.append(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |")
        lines.append("")
        robustness = (config.get("robustness") or {}).get("per_corruption_mean")
        if robustness:
            lines += ["Accuracy under each corruption (mean over severities 1-5):", "",
                      "| corruption | accuracy |", "| --- | --- |"]
            lines += [f"| {name} | {value:.4f} |" for name, value in robustness.items()]
            lines.append("")
        if config.get("evaluation_command"):
            lines += [f"Measured with `{config['evaluation_command']}`.", ""]
    calibration = config.get("calibration") or {}
    if calibration.get("temperature") is not None:
        fitted_on = calibration.get("fitted_on", "labelled images")
        kept = TEMPERATURE_KEPT in fitted_on
        lines += ["## Calibration", "",
                  (f"Probabilities keep the temperature T = {calibration['temperature']:.4f}; calibrated on "
                   if kept else
                   f"Probabilities are temperature-scaled (T = {calibration['temperature']:.4f}), fitted on ")
                  + f"{fitted_on}."]
        if calibration.get("ece_before") is not None and calibration.get("ece_after") is not None:
            where = calibration.get("ece_measured_on") or "the same images"
            lines[-1] += (f" Expected calibration error (15 bins) on {where}: {calibration['ece_before']:.4f} "
                          f"uncalibrated, {calibration['ece_after']:.4f} calibrated.")
        if calibration.get("review_below") is not None:
            share, flagged = calibration.get("review_share"), calibration.get("review_flagged")
            lines[-1] += (f" A prediction less sure than {calibration['review_below']:.4f} is flagged for review"
                          + (f" ({'with the out-of-distribution ones below, ' if calibration.get('features') else ''}"
                             f"{flagged:.1%} of the calibration images are flagged; the aim was {share * 100:g}%)."
                             if isinstance(flagged, (int, float)) and share else
                             f" (the threshold under which {share * 100:g}% of the calibration images fall)." if share
                             else "."))
        features = calibration.get("features")
        if isinstance(features, dict) and features.get("layer"):
            fitted, _, how = (features.get("fitted_on") or "the training images").partition("; ")
            lines[-1] += (f" An image whose features (layer `{features['layer']}`, averaged over space) are farther "
                          f"from those of {fitted} than those of all but the farthest {features.get('share', 0):.1%} of "
                          f"the calibration images{f' ({how})' if how else ''} is flagged as out of distribution "
                          "(bloodcell.ood), and for review too"
                          + (", with the network's own probabilities (no temperature: the calibration images say "
                             "nothing of them)." if calibration.get("temperature_outside") == 1.0 else "."))
        else:
            lines[-1] += (" The model has no out-of-distribution check of its own: predictions check for non-cell "
                          "images with the colour-statistics test of `bloodcell.outliers`, whose reference is PBC's "
                          "cells, so it may also flag cells of a lab whose stain differs from theirs.")
        tta = calibration.get("tta")
        if isinstance(tta, dict) and isinstance(tta.get("temperature"), (int, float)):
            lines[-1] += (" With test-time augmentation (`tta=True`, `--tta`: the mean over 8 flips and rotations, "
                          f"softer) the probabilities have a temperature of their own, T = {tta['temperature']:.4f}"
                          + (f", and the review threshold {tta['review_below']:.4f}"
                             if isinstance(tta.get("review_below"), (int, float)) else "")
                          + (f" (ECE there {tta['ece_before']:.4f} uncalibrated, {tta['ece_after']:.4f} calibrated)"
                             if isinstance(tta.get("ece_after"), (int, float)) and isinstance(tta.get("ece_before"), (int, float))
                             else "") + ".")
        lines.append("")
    if training:
        lines += ["## Training", ""]
        for key, value in training.items():
            if key == "averaged_from":  # listed, model by model, under the title
                continue
            lines.append(f"- {key}: `{value}`" if key == "command" else f"- {key}: {_plain(value)}")
        lines.append("")
    source = config.get("hub_source") or "path/to/this/folder"
    lines += [
        "## Usage",
        "",
        "```python",
        "import bloodcell",
        "",
        f'clf = bloodcell.load_classifier("{source}")',
        'print(clf.predict(["cell.jpg"]))',
        "```",
        "",
        "```bash",
        f"bloodcell predict cell.jpg --model {source}",
        "```",
        "",
    ]
    missing = [what for what, key in (("the training data", "dataset_id"), ("the licence", "license"))
               if not config.get(key)]
    if missing:
        known = "; ".join(f"{what}: {config[key]}" for what, key in (("data set", "dataset_id"), ("licence", "license"))
                          if config.get(key))
        lines += ["## Data and licence", "",
                  f"**To fill in:** {' and '.join(missing)} of these weights {'is' if len(missing) == 1 else 'are'} not "
                  f"recorded{f' ({known})' if known else ''}. Set `dataset_id`, `dataset_name` and `license` in "
                  "config.json (or train with `bloodcell train --dataset-name ... --license ...`) before you publish "
                  "this model.", ""]
    if "pbc" in str(config.get("dataset_id") or "").lower():
        lines += ["## Data and citation", "", f"Trained on PBC images (CC BY 4.0): {PBC_CITATION}", ""]
    return signed_card("\n".join(lines))


_MARK_TEXT = "<!-- generated by bloodcell from config.json; sha256 {} -->"
_MARK = re.compile(re.escape(_MARK_TEXT).replace(r"\{\}", "([0-9a-f]{16})") + "\n?")


def signed_card(body: str) -> str:
    """``body`` with a last line holding its digest: a card edited since is told from one to regenerate."""
    body = body if body.endswith("\n") else body + "\n"
    return body + _MARK_TEXT.format(_digest(body)) + "\n"


def card_edited(text: str) -> bool:
    """Whether a card :func:`signed_card` wrote was changed since (a card without the digest, written by an
    older bloodcell, counts as unchanged)."""
    marks = list(_MARK.finditer(text))
    if not marks:
        return False
    last = marks[-1]
    return _digest(text[: last.start()]) != last.group(1) or bool(text[last.end():].strip())


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def _plain(value, nested: bool = False) -> str:
    """A training-record value as card text: ``key=value; ...``, nested records in parentheses, no Python repr."""
    if isinstance(value, dict):
        text = ("; " if not nested else ", ").join(f"{key}={_plain(v, True)}" for key, v in value.items())
        return f"({text})" if nested else text
    if isinstance(value, (list, tuple)):
        text = ", ".join(_plain(v, True) for v in value)
        return f"[{text}]" if nested else text
    return str(value)
