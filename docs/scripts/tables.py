"""Markdown tables of the docs, rendered from measured data at build time.

The mkdocs hook (``docs/hooks.py``) replaces each ``<!-- table: NAME -->`` line of a page with
``TABLES[NAME]()``. Figures come from ``benchmarks/results/*.json`` (written by the scripts in
``benchmarks/``), the zoo's registry and the augmentation presets, never typed by hand: rerun a
benchmark and rebuild the docs to update them. A missing JSON file renders as a note saying which
command produces it.

    python docs/scripts/tables.py zoo      # print one table
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO))


def load(name: str) -> Optional[dict[str, Any]]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(value: Optional[float], digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def missing(name: str, script: str) -> str:
    return (f"!!! note \"Not measured yet\"\n    `benchmarks/results/{name}.json` does not exist yet: "
            f"run `python benchmarks/{script}` and rebuild the docs.")


def machine(data: dict[str, Any]) -> str:
    m = data.get("machine")
    if isinstance(m, str):
        return m
    if isinstance(m, dict):
        keys = ("cpus", "platform", "python", "tensorflow", "keras")
        return ", ".join(f"{k} {m[k]}" for k in keys if k in m)
    return "the 2-core development machine"


# -- the zoo -------------------------------------------------------------------------------------
def zoo_architectures() -> str:
    from bloodcell.registry import architecture_info, list_models

    rows = []
    for name in list_models():
        info = architecture_info(name)
        rows.append([f"`{name}`", info.family, info.description, "yes" if info.trainable_here else "builder only"])
    return table(["architecture", "family", "what", "trainable on a CPU"], rows)


def zoo_entries() -> str:
    from bloodcell.registry import list_pretrained, pretrained_entry

    accuracy = (load("accuracy") or {}).get("models", {})
    export = load("export") or {}
    predict = load("predict") or {}
    rows = []
    for name in list_pretrained():
        e = pretrained_entry(name)
        measured = accuracy.get(name, {})
        metrics = {**e.metrics, **{k: measured[k] for k in ("accuracy", "macro_f1", "robustness_mean") if k in measured}}
        speed = "–"
        if export.get("model") == name:
            speed = f"{export['throughput_batch64']['keras_predict_proba_img_per_s']:.0f} img/s"
        elif predict.get("model") == name and predict.get("predict_proba_in_memory_s"):
            speed = f"{predict['images'] / predict['predict_proba_in_memory_s']:.0f} img/s"
        where = ("bundled" if e.bundled else f"`hf://{e.repo_id}`" if e.published
                 else f"`zoo/{e.name}` in a checkout (not yet on the Hub)")
        rows.append([f"`{name}`", e.architecture, e.init, pct(metrics.get("accuracy")), pct(metrics.get("macro_f1")),
                     pct(metrics.get("robustness_mean"), 1), f"{e.size_bytes / 1e6:.1f} MB" if e.size_bytes else "–",
                     f"{e.num_params / 1e6:.2f} M" if e.num_params else "–", speed, where])
    return table(["entry", "architecture", "init", "accuracy", "macro F1", "robustness mean", "weights", "parameters",
                  "speed (CPU, batch 64)", "where"], rows)


# -- benchmarks ----------------------------------------------------------------------------------
def bench_accuracy() -> str:
    data = load("accuracy")
    if data is None:
        return missing("accuracy", "bench_accuracy.py")
    rows = []
    for name, m in data["models"].items():
        rows.append([f"`{name}`", m["test_images"], pct(m["accuracy"]), pct(m["balanced_accuracy"]), pct(m["macro_f1"]),
                     pct(m.get("tta_accuracy")), pct(m["robustness_mean"], 1), f"`{m['command']}`"])
    seed = [["seed report: EfficientNetB0 (Keras 2, ImageNet init)", "local test set", "94.65 %", "–", "–", "–",
             "81 % on its hidden altered test set", "–"]]
    return table(["model", "test images", "accuracy", "balanced acc.", "macro F1", "accuracy with TTA",
                  "robustness mean", "command"], rows + seed) + f"\n\nMachine: {machine(data)}."


def default_model_entry(models: dict) -> tuple[str, dict]:
    """The bundled default's entry of a results file's models (the first one where it has none)."""
    from bloodcell import DEFAULT_MODEL

    return (DEFAULT_MODEL, models[DEFAULT_MODEL]) if DEFAULT_MODEL in models else next(iter(models.items()))


def bench_robustness() -> str:
    data = load("accuracy")
    if data is None:
        return missing("accuracy", "bench_accuracy.py")
    name, m = default_model_entry(data["models"])
    r = m["robustness"]
    header = ["corruption"] + [f"severity {s}" for s in r["severities"]] + ["mean"]
    rows = [[c] + [pct(a, 1) for a in accs] + [pct(r["per_corruption_mean"][c], 1)] for c, accs in r["accuracy"].items()]
    rows.append(["**mean**"] + [pct(a, 1) for a in r["per_severity_mean"]] + [f"**{pct(r['robustness_mean'], 1)}**"])
    native = m.get("robustness_native")
    if native:
        header.append(f"mean, corrupted at {native['corrupt_size']}x{native['corrupt_size']}")
        for row, c in zip(rows, r["accuracy"]):
            row.append(pct(native["per_corruption_mean"][c], 1))
        rows[-1].append(f"**{pct(native['robustness_mean'], 1)}**")
    text = (f"`{name}` on its {r['n']} held-out images (clean accuracy {pct(r['clean_accuracy'])}, seed {r['seed']}):\n\n"
            + table(header, rows))
    if native:
        text += (f"\n\n`bloodcell evaluate` corrupts the images at the model's input size. The last column "
                 f"applies each corruption to the {native['corrupt_size']}x{native['corrupt_size']} images as "
                 "stored, before they are resized for the model, as a camera or scanner would: JPEG blocks and "
                 "noise then cover more of the cell.")
    return text


def bench_predict() -> str:
    d = load("predict")
    if d is None:
        return missing("predict", "bench_predict.py")
    rows = [["`bloodcell predict` path (`Classifier.predict_files`)", f"{d['bloodcell_predict_files_img_per_s']:.0f}"],
            ["naive loop: PIL open (and resize) + `model.predict` per image", f"{d['naive_loop_img_per_s']:.0f}"],
            ["decode (and resize) all with PIL, then one `model.predict` (batch 64)", f"{d['preload_plus_predict_img_per_s']:.0f}"]]
    return (table(["how", "images/s"], rows)
            + f"\n\n{d['images']} images ({d['data']}), architecture `{d['architecture']}`"
            + (f" at {d['input_size']}x{d['input_size']}" if "input_size" in d else "") + ": "
            f"**{d['speedup_vs_naive']:.1f}x** the naive loop and **{d['ratio_vs_preload_plus_predict']:.2f}x** "
            f"decode-then-predict"
            + (f", **{d['ratio_vs_model_predict_in_memory']:.2f}x** the model alone on images already in memory "
               f"({d['images'] / d['model_predict_s']:.0f} images/s)" if "ratio_vs_model_predict_in_memory" in d else "")
            + (f" and **{d['ratio_vs_predict_proba_in_memory']:.2f}x** `Classifier.predict_proba` without any check "
               f"on them" if "ratio_vs_predict_proba_in_memory" in d else "")
            + (f"; outlier check: {d['outlier_check']}" if "outlier_check" in d else "")
            + ". The whole command, process start included, took "
            f"{d['cli_wall_s_including_start']:.1f} s. Machine: {machine(d)}.")


def bench_pipeline() -> str:
    d = load("pipeline")
    if d is None:
        return missing("pipeline", "bench_pipeline.py")
    med = d["images_per_second_median"]
    rows = [[f"`{k}`", f"{v:.0f}"] for k, v in med.items()]
    ratio_rows = [[preset, k, f"{v:.2f}x"] for preset, r in d["ratios"].items() for k, v in r.items()]
    out = (table(["pipeline (batch 64, 96x96)", "images/s (median)"], rows) + "\n\n"
           + table(["preset", "ratio", "value"], ratio_rows))
    decode = med.get("image_dataset_from_directory[None]")
    if decode:
        parts = []
        for preset in d["ratios"]:
            alone, ours = med[f"augmentation only[{preset}]"], med[f"make_dataset[{preset}]"]
            base = med[f"image_dataset_from_directory+map[{preset}]"]
            parts.append(f"`\"{preset}\"` augmentation alone, one call per batch of 64 as the baseline runs it, "
                         f"runs at {alone:.0f} images/s ({decode / alone:.1f}x the cost of decoding); `make_dataset` "
                         f"delivers {ours:.0f} ({ours / alone:.2f}x that) against the baseline's {base:.0f} "
                         f"({ours / base:.2f}x)")
        out += ("\n\nWhere the time goes: decoding the files (`image_dataset_from_directory` without "
                f"augmentation) runs at {decode:.0f} images/s; " + "; ".join(parts) + ". On two CPU cores "
                "both pipelines keep the cores busy with the same augmentation, dearer than decoding, so "
                "the ratio is about 1 + (decoding's cost) / (the augmentation's cost), plus what uint8 "
                "warps and chunks of 32 batches per call (a call's fixed costs shared by 32 times more "
                "images) add: compare the rows \"one batch per call\". One batch per call, beating the "
                "baseline 2x would need an augmentation about as cheap as decoding; the chunks' savings "
                "make up the rest.")
    if d.get("corruption_evaluation"):
        c = d["corruption_evaluation"]
        out += (f"\n\nThe robustness workload ({c['images']} images x {c['corruptions']} corruptions x "
                f"{c['severities']} severities) corrupts in {c['seconds']:.1f} s.")
    return out + f"\n\nMachine: {machine(d)}."


def bench_cleaning() -> str:
    d = load("cleaning")
    if d is None:
        return missing("cleaning", "bench_cleaning.py")
    dup, out, rows_ = d["duplicates"], d["outliers"], d["rows"]
    rows = [
        ["rows", f"{rows_['total']:,} ({rows_['cells']:,} pbc96 cells, {rows_['injected_outliers']:,} injected outliers, "
                 f"{rows_['injected_duplicates']} injected copies)"],
        ["outlier recall / precision", f"{pct(out['recall'])} / {pct(out['precision'])}"],
        ["outlier recall on sources held out from design", pct(out["recall_held_out_sources"])],
        ["cells flagged as outliers", f"{out['flagged_cells']} ({', '.join(out.get('flagged_cell_files', []))})"],
        ["injected duplicate pairs found", f"{dup['injected_pairs_found']} / {dup['injected_pairs']}"],
        ["false duplicate pairs", dup["false_pairs"]],
        ["pbc96's own identical pairs found", dup["pbc96_identical_pairs_found"]],
        ["`find_duplicates` time (near / exact only)", f"{d['find_duplicates_seconds']:.1f} s / {d['find_duplicates_exact_only_seconds']:.1f} s"],
        ["`find_outliers` speed", f"{out['images_per_second']:,} images/s"],
        ["`clean` end to end", f"{d['clean']['seconds']:.1f} s"],
        ["loading pbc96 (`load_dataset`)", f"{d['load_pbc96_seconds']:.1f} s"],
    ]
    if "recall_memes" in out:
        rows.insert(3, ["outlier recall on the repeated pictures (memes)", pct(out["recall_memes"])])
    if "false_positive_rate_cells_in_reference_half" in out:
        rows.insert(5, ["cells flagged, reference half / unseen half of pbc96",
                        f"{pct(out['false_positive_rate_cells_in_reference_half'], 3)} / "
                        f"{pct(out['false_positive_rate_cells_not_in_reference'], 3)}"])
    if dup.get("photo_variant_pairs_of_the_same_picture"):
        rows.insert(8, ["pairs of crops of one photograph (recoloured, overlapping): counted apart",
                        dup["photo_variant_pairs_of_the_same_picture"]])
    text = table(["measure", "result"], rows)
    corrupted = d.get("corrupted_cells_false_positive_rate")
    if corrupted:
        text += ("\n\nCells of the pbc96 half the reference never saw, corrupted, flagged as outliers: "
                 + "; ".join(f"{k.replace('_', ' ')}: {pct(v, 2)}" for k, v in corrupted.items()) + ".")
    suite = d.get("corruption_suite_false_positive_rate")
    if suite:
        levels = sorted({lvl for per in suite.values() for lvl in per})
        rows = [[name, *(pct(per.get(lvl), 1) for lvl in levels)] for name, per in suite.items()]
        text += ("\n\nUnder `bloodcell.corruptions`' corruptions, share of those cells flagged:\n\n"
                 + table(["corruption", *(lvl.replace("_", " ") for lvl in levels)], rows))
    return text + f"\n\nMachine: {machine(d)}."


def bench_export() -> str:
    d = load("export")
    if d is None:
        return missing("export", "bench_export.py")
    rows = [[fmt, f"{f['export_s']:.1f} s", f"{f['size_bytes'] / 1e6:.1f} MB", f"{f['max_abs_diff_vs_keras']:.1e}",
             f"{f['same_top1_as_keras']}/{d['compared_images']}", f"{d['throughput_batch64'][f'{fmt}_img_per_s']:.0f}"]
            for fmt, f in d["formats"].items()]
    t = d["throughput_batch64"]
    rows.append(["Keras (`predict_proba`)", "–", f"{d['keras_weights_file_bytes'] / 1e6:.1f} MB (weights)", "–", "–",
                 f"{t['keras_predict_proba_img_per_s']:.0f}"])
    versions = ", ".join(f"{k} {v}" for k, v in d.get("versions", {}).items())
    return (table(["format", "export time", "size", "max abs. difference vs Keras", "same class", "images/s (batch 64)"], rows)
            + f"\n\nModel `{d['model']}`, {d['threads']} threads. Versions: {versions}. Machine: {machine(d)}.")


# -- augmentation and the command line ------------------------------------------------------------
def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return str(value)


def augment_preset(preset: str) -> str:
    from bloodcell.augment import describe_preset

    rows = []
    for row in describe_preset(preset):
        params = ", ".join(f"{k}={_short(v)}" for k, v in row["parameters"].items())
        rows.append([f"`{row['layer']}`", f"{row['probability']:.3f}", params.replace("|", "/"),
                     row["description"].replace("``", "`")])
    return table(["layer (in order)", "share of images", "parameters", "what it does"], rows)


def cli_help() -> str:
    from bloodcell.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    parts = [f"```text\n$ bloodcell --help\n{parser.format_help()}```"]
    for name, p in sorted(sub.choices.items()):
        parts.append(f"## `bloodcell {name}`\n\n```text\n$ bloodcell {name} --help\n{p.format_help()}```")
        nested = [a for a in p._actions if a.__class__.__name__ == "_SubParsersAction"]
        for action in nested:
            for sub_name, sp in sorted(action.choices.items()):
                parts.append(f"### `bloodcell {name} {sub_name}`\n\n```text\n$ bloodcell {name} {sub_name} --help\n"
                             f"{sp.format_help()}```")
    return "\n\n".join(parts)


# -- other labs ----------------------------------------------------------------------------------
ABLATION_NAMES = {
    "previous": "previous default (mnv3s.pbc96 0.1), as it is",
    "norm-at-test": "previous default, stain normalisation put in front (no training)",
    "norm": "+ stain normalisation, fine-tuned with `robust`",
    "norm+stain+blur": "+ normalisation, stain jitter, blur",
    "norm+stain+scale+blur": "+ normalisation, stain jitter, magnification, blur (`domain` at full rates)",
    "norm+mild": "+ normalisation, stain, magnification, blur at half rates",
    "norm+mild+polish": "the same, 12 more epochs at a lower rate",
}


def ablation() -> str:
    data = load("ablation")
    if data is None:
        return missing("ablation", "bench_ablation.py VARIANT ...")
    rows = []
    for key, row in data["variants"].items():
        rows.append([ABLATION_NAMES.get(key, f"`{key}`"), pct(row["pbc_accuracy"]), pct(row["robustness_mean"]),
                     pct(row["bccd_accuracy"], 1), f"{row['training_minutes']:.0f} min" if row.get("training_minutes") else "–"])
    note = f"\n\n{data['note']}" if data.get("note") else ""
    return table(["variant", "PBC held-out accuracy", "robustness mean", "BCCD zero-shot", "training"], rows) + note


def outside_zero_shot() -> str:
    data = load("outside")
    if data is None:
        return missing("outside", "bench_outside.py")
    rows = [[f"`{r['model']}`", pct(r["accuracy"], 1), pct(r["balanced_accuracy"], 1),
             pct(r["accuracy_restricted_to_present_classes"], 1), f"{r['mean_confidence']:.2f}",
             ", ".join(f"{c} {100 * v:.0f}%" for c, v in r["per_class_recall"].items())] for r in data["zero_shot"]]
    counts = ", ".join(f"{c} {n}" for c, n in data["data"]["counts"].items())
    return (table(["model", "accuracy (8 classes)", "balanced", "answer among BCCD's 5 classes", "mean confidence",
                   "recall per class"], rows) + f"\n\nBCCD-WBC: {counts}; measured on {data['machine']}.")


def outside_few_shot() -> str:
    data = load("outside")
    if data is None or "few_shot_acceptance" not in data:
        return missing("outside", "bench_outside.py")
    acc = data["few_shot_acceptance"]
    text = (f"`{acc['command']}` with FEW holding {', '.join(f'{n} {c}' for c, n in acc['few'].items())}: "
            f"{acc['seconds'] / 60:.1f} minutes, **{pct(acc['accuracy_on_rest'], 1)}** on the other "
            f"{acc['rest_images']} BCCD images of those classes (balanced {pct(acc['balanced_accuracy_on_rest'], 1)}; "
            f"the run's own cross-validated figure: {pct(acc['cross_validated_accuracy'], 1)}).")
    review = acc.get("review_on_rest")
    if acc.get("ece_on_rest") is not None and review:
        text += (f" Calibrated on its cross-validated predictions, its probabilities there have an ECE of "
                 f"{acc['ece_on_rest']:.3f}; the review flags {pct(review['flagged'], 1)} of those images"
                 + (f" ({pct(review['outliers'], 1)} as unlike the cells it was trained on)"
                    if review.get("outliers") is not None else "")
                 + f", and {pct(review['accuracy_unflagged'], 1)} of the others are right.")
    soup = data.get("few_shot_soup")
    if soup:
        text += (f" On {soup['draws']} other draws of {soup['k']} images a class, the soup that `bloodcell train` "
                 f"saves gets {pct(soup['mean_soup'], 1)} on average where the first of its models alone gets "
                 f"{pct(soup['mean_alone'], 1)} (`--no-soup`; per draw: "
                 + ", ".join(f"{pct(a, 1)} → {pct(s, 1)}" for a, s in zip(soup["alone"], soup["soup"]))
                 + "; the table below is of single models).")
    curve = data.get("few_shot_curve")
    if curve:
        by_k: dict[int, dict[str, float]] = {}
        for row in curve:
            by_k.setdefault(row["k"], {})[row["init"]] = row["mean"]
        rows = [[k, pct(v.get("default"), 1), pct(v.get("random"), 1)] for k, v in sorted(by_k.items())]
        text += "\n\n" + table(["labelled images a class (k)", "fine-tuned from the default", "from random init"], rows)
    every = data.get("few_shot_every_label")
    if every:
        share = (every["folds"] - 1) / every["folds"]
        text += (f"\n\nWith every label: a {every['folds']}-fold cross-validation over all {every['images']} images of "
                 f"those classes, each part classified by a model trained from the default on the others (about "
                 f"{share * every['images']:.0f} images), gets **{pct(every['accuracy'], 1)}** (balanced "
                 f"{pct(every['balanced_accuracy'], 1)}).")
    return text


def candidates() -> str:
    data = load("candidates")
    if data is None:
        return missing("candidates", "bench_candidates.py NAME=FOLDER ...")
    rows = []
    for r in data["candidates"]:
        t = r["training"]
        how = ", ".join(p for p in (t.get("hardware"), f"{t['wall_time_s'] / 60:.0f} min" if t.get("wall_time_s") else None,
                                    f"{t['images_seen'] / 1e3:.0f}k images" if t.get("images_seen") else None) if p)
        few = r["few_shot"]
        rows.append([f"`{r['model']}`", how or "–", pct(r["pbc_accuracy"]), pct(r["robustness_mean"]),
                     pct(r["bccd_zero_shot"], 1), f"{pct(few['accuracy_on_rest'], 1)} ({few['seconds'] / 60:.1f} min)"])
    return (table(["candidate", "trained (last stage)", "PBC held-out accuracy", "robustness mean", "BCCD zero-shot",
                   "few-shot: 10 a class, one model (--no-soup), the rest of BCCD"], rows)
            + f"\n\nMeasured on {machine(data)} by `python benchmarks/bench_candidates.py`.")


def calibration() -> str:
    data = load("calibration")
    if data is None:
        return missing("calibration", "bench_calibration.py")
    rows = []
    for name, d in data["sets"].items():
        b, a = d["before"], d["after"]
        review = d.get("review") or {}
        rows.append([f"{name} ({d['images']} images)", pct(a["accuracy"]), f"{b['ece']:.4f} → **{a['ece']:.4f}**",
                     f"{b['nll']:.3f} → {a['nll']:.3f}", f"{b['brier']:.3f} → {a['brier']:.3f}",
                     f"{b['mean_confidence']:.3f} → {a['mean_confidence']:.3f}", pct(review.get("outliers"), 1),
                     pct(review.get("flagged"), 1), pct(review.get("accuracy_unflagged"))])
        tta = d.get("tta")
        if tta:  # predict_proba(tta=True), with the mode's own temperature and threshold
            b, a, review = tta["before"], tta["after"], tta["review"]
            rows.append([f"{name}, TTA (8 views)", pct(a["accuracy"]), f"{b['ece']:.4f} → **{a['ece']:.4f}**",
                         f"{b['nll']:.3f} → {a['nll']:.3f}", f"{b['brier']:.3f} → {a['brier']:.3f}",
                         f"{b['mean_confidence']:.3f} → {a['mean_confidence']:.3f}", pct(d.get("review", {}).get("outliers"), 1),
                         pct(review["flagged"], 1), pct(review["accuracy_unflagged"])])
    check = data.get("feature_check")
    note = (f" Review threshold {data['review_below']:.4f}: the calibrated probability under which, with the "
            f"out-of-distribution cells, {data['review_share_on_validation']:.0%} of the validation cells fall."
            if "review_below" in data else "")
    if data.get("tta"):
        note += (f" With test-time augmentation (`tta=True`, the mean over 8 flips and rotations) T = "
                 f"{data['tta']['temperature']:.4f} and the threshold {data['tta']['review_below']:.4f}, fitted the "
                 "same way on the same validation cells.")
    if check:
        note += (f" Out-of-distribution check: layer `{check['layer']}`, Gaussian over {check['components']} principal "
                 f"components and the rest, fitted to {check['fitted_on']}; threshold the score that "
                 f"{check['share_on_validation']:.1%} of the validation cells exceed.")
    text = (table(["images", "accuracy", "ECE (15 bins)", "NLL", "Brier", "mean confidence", "out of distribution",
                   "flagged for review", "accuracy of the others"], rows)
            + f"\n\n`{data['model']}`, temperature T = {data['temperature']:.4f} fitted on {data['fitted_on']}." + note)
    misses = data["sets"].get("pbc96 held-out", {}).get("unflagged_errors")
    if misses:
        rows = [[f"`{m['file']}`", m["label"], m["predicted"], f"{m['probability']:.3f}"] for m in misses]
        text += (f"\n\nThe {len(misses)} held-out cells that the review lets through with a wrong class (PBC's file "
                 "names begin with the cell's subtype: BNE band and SNE segmented neutrophil, MMY metamyelocyte, "
                 "MY myelocyte, PMY promyelocyte, IG immature granulocyte of no finer subtype, BA basophil, ERB erythroblast, "
                 "MO monocyte):\n\n"
                 + table(["file", "label", "prediction", "calibrated probability"], rows))
    held, val = data["sets"].get("pbc96 held-out", {}), data.get("validation")
    if val and "errors_by_subtype" in held:
        splits = {"validation": val, "held-out": held}
        cells = {}
        for split_name, d in splits.items():
            for e in d["errors_by_subtype"]:
                cells.setdefault((e["subtype"], e["predicted"]), {})[split_name] = e["cells"]
        rows = [[sub, pred, *(counts.get(n, 0) for n in splits)]
                for (sub, pred), counts in sorted(cells.items(), key=lambda kv: -sum(kv[1].values()))]
        target = data["accuracy_target"]
        needed = " and ".join(f"{pct(d['flagged_needed'], 1)} of the {n} cells ({d['errors']} errors in "
                              f"{d['images']})" for n, d in splits.items())
        text += (f"\n\nEvery error of the validation and held-out splits, by the cell's PBC subtype and the "
                 f"class it was given. For {pct(target, 1)} of the others to be right, the review would have to "
                 f"flag {needed}, the least confident first.\n\n"
                 + table(["subtype", "predicted", *splits], rows))
    if data.get("non_cells"):
        rows = [[kind, d["images"], pct(d["feature_check"], 1), pct(d["review"], 1), pct(d["colour_test"], 1)]
                for kind, d in data["non_cells"].items()]
        text += ("\n\nSynthetic non-cell images (`tests/synth_cells.py`), share flagged:\n\n"
                 + table(["kind", "images", "feature check", "review", "colour-statistics test"], rows))
    return text


def explain() -> str:
    data = load("explain")
    if data is None:
        return missing("explain", "bench_explain.py")
    curves = data["mean_probability_after_deleting"]
    labels = {"heatmap": "hottest pixels first", "coldest": "coldest pixels first", "random": "random pixels"}
    rows = [[labels[name], *(f"{v:.3f}" for v in values), f"**{data['area_' + name]:.3f}**"]
            for name, values in curves.items()]
    header = ["pixels replaced by the background", *(f"{100 * f:.0f} %" for f in data["fractions_deleted"]), "mean"]
    return (table(header, rows) + f"\n\nMean probability of the explained class, {data['data']}; "
            f"{data['mean_probability_before']:.3f} before any deletion. `{data['model']}`, {data['method']}.")


def processes() -> str:
    d = load("processes")
    if d is None:
        return missing("processes", "bench_processes.py")
    base = next((r for r in d["rows"] if r["backend"] == "tensorflow" and r["processes"] == 1), d["rows"][0])
    rows = [[f"Keras on {r['backend']}", r["processes"], r["devices"], f"{1000 * r['step_s']:.0f} ms",
             f"{r['images_per_s']:.0f}", f"{r['step_s'] / base['step_s']:.1f}x", f"{r['first_epoch_s']:.0f} s"]
            for r in d["rows"]]
    return (table(["backend", "processes", "devices", "step (global batch)", "images/s", "step time vs TensorFlow",
                   "first epoch (with compiling)"], rows)
            + f"\n\n{d['setup']}. Machine: {machine(d)}; all processes on it. `{d['command']}`.")


TABLES: dict[str, Callable[[], str]] = {
    "calibration": calibration,
    "processes": processes,
    "explain": explain,
    "ablation": ablation,
    "candidates": candidates,
    "outside-zero-shot": outside_zero_shot,
    "outside-few-shot": outside_few_shot,
    "zoo-architectures": zoo_architectures,
    "zoo-entries": zoo_entries,
    "bench-accuracy": bench_accuracy,
    "bench-robustness": bench_robustness,
    "bench-predict": bench_predict,
    "bench-pipeline": bench_pipeline,
    "bench-cleaning": bench_cleaning,
    "bench-export": bench_export,
    "augment-seed": lambda: augment_preset("seed"),
    "augment-robust": lambda: augment_preset("robust"),
    "augment-domain": lambda: augment_preset("domain"),
    "cli": cli_help,
}

if __name__ == "__main__":
    for arg in sys.argv[1:] or TABLES:
        print(f"<!-- table: {arg} -->\n{TABLES[arg]()}\n")
