"""The library's structure: no import cycles, self-describing models, old folders, Keras' hooks."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import bloodcell

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bloodcell"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the bloodcell modules it imports, from every import statement (lazy ones too)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem for alias in node.names]
            for target in targets:
                while target and target not in modules:  # `import bloodcell.x.y` names a module's attribute
                    target = target.rpartition(".")[0]
                if target and target.startswith("bloodcell") and target != name:
                    graph[name].add(target)
    return graph


def test_no_import_cycles_among_bloodcell_modules():
    graph = _import_graph()
    assert len(graph) > 30 and graph["bloodcell.classifier"]  # the walk found the package
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_keras_file_round_trip_in_a_fresh_process(tmp_path):
    """Every registered architecture, saved as .keras here, loads in a new process (safe mode) as a
    ClassifierModel with its architecture, classes and outputs."""
    names = ["neutrophil", "blast", "lymphocyte"]
    x = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    for arch in bloodcell.list_models():
        model = bloodcell.build_model(arch, input_size=32, class_names=names, normalization="stain")
        np.save(tmp_path / f"{arch}.npy", np.asarray(model(x, training=False)))
        model.save(tmp_path / f"{arch}.keras")
    script = textwrap.dedent("""
        import json, sys
        import numpy as np, keras
        import bloodcell
        x = np.load(sys.argv[1] + "/x.npy")
        for arch in sys.argv[2:]:
            model = keras.saving.load_model(f"{sys.argv[1]}/{arch}.keras")  # safe mode
            p = np.load(f"{sys.argv[1]}/{arch}.npy")
            print(json.dumps({"type": type(model).__name__, "architecture": model.architecture,
                              "class_names": list(model.class_names), "input_size": model.input_size,
                              "normalization": model.normalization is not None,
                              "max_diff": float(np.abs(np.asarray(model(x, training=False)) - p).max())}))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path), *bloodcell.list_models()],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [g["architecture"] for g in got] == bloodcell.list_models()
    for g in got:
        assert g == {"type": "ClassifierModel", "architecture": g["architecture"], "class_names": names,
                     "input_size": 32, "normalization": True, "max_diff": pytest.approx(0.0, abs=1e-5)}


@pytest.mark.parametrize("imports", ["import bloodcell; import keras",
                                     "import bloodcell; import tensorflow; import keras"])
def test_keras_file_loads_with_bloodcell_imported_first_and_no_start_up_lines(tmp_path, imports):
    """TensorFlow imports Keras itself: the classes are registered however Keras arrives, and
    TensorFlow imported after bloodcell prints nothing either."""
    bloodcell.build_model("microcell", input_size=32, class_names=["a", "b"]).save(tmp_path / "m.keras")
    script = imports + "\nimport sys\nprint(type(keras.saving.load_model(sys.argv[1])).__name__)"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.keras")], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "ClassifierModel", "")


def test_models_build_and_load_on_jax_without_tensorflow(tmp_path):
    """With TensorFlow missing and Keras on JAX (a GPU machine with JAX alone), bloodcell.models
    builds the default's architecture and loads its weights, with the outputs it has here."""
    from bloodcell.zoo import bundled_path

    folder = bundled_path(bloodcell.DEFAULT_MODEL)
    clf = bloodcell.load_classifier()
    x = np.random.default_rng(2).integers(0, 256, (2, clf.input_size, clf.input_size, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "p.npy", np.asarray(clf.model(x, training=False)))
    script = textwrap.dedent("""
        import json, sys

        class NoTensorFlow:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "tensorflow":
                    raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")

        sys.meta_path.insert(0, NoTensorFlow())
        import numpy as np
        import bloodcell
        from bloodcell.models import ModelSpec, build_from_spec
        config = json.load(open(sys.argv[2] + "/config.json"))
        model = build_from_spec(ModelSpec.from_config(config["architecture"], config["build"]),
                                class_names=config["class_names"])
        model.load_weights(sys.argv[2] + "/model.weights.h5")
        diff = np.abs(np.asarray(model(np.load(sys.argv[1] + "/x.npy"), training=False)) - np.load(sys.argv[1] + "/p.npy"))
        print(json.dumps({"tensorflow": "tensorflow" in sys.modules, "max_diff": float(diff.max())}))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(folder)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"tensorflow": False,
                                                                 "max_diff": pytest.approx(0.0, abs=1e-4)}


def test_shipped_version_1_folders_load_with_the_same_probabilities():
    """Probabilities that bloodcell 0.1 (format version 1, before ClassifierModel) gave for the
    sample images, from the folders it saved."""
    from bloodcell.classifier import load_folder

    saved = json.loads((ROOT / "tests" / "data" / "v1_probabilities.json").read_text())
    images = [ROOT / p for p in saved["images"]]
    folders = {"mnv3s.pbc96": ROOT / "zoo" / "mnv3s.pbc96-0.1", "effnetb0.pbc96": ROOT / "zoo" / "effnetb0.pbc96"}
    for name, folder in folders.items():
        config = json.loads((folder / "config.json").read_text())
        assert config.get("format_version", 1) == 1
        clf = load_folder(folder)
        # the network's own probabilities: a folder calibrated since (effnetb0.pbc96) adds a temperature on top
        np.testing.assert_allclose(clf.predict_proba(images, calibrated=False), np.asarray(saved[name]), atol=2e-6)


def test_new_head_keeps_the_backbone_and_the_shared_classes():
    parent = bloodcell.build_model("microcell", input_size=32)
    child = parent.with_classes(["lymphocyte", "blast", "neutrophil"], input_size=48)
    assert child.class_names == ("lymphocyte", "blast", "neutrophil") and child.input_size == 48
    for a, b in zip(parent.backbone.get_weights(), child.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    kernel, bias = parent.head.get_weights()
    new_kernel, new_bias = child.head.get_weights()
    for j, name in ((0, "lymphocyte"), (2, "neutrophil")):
        i = bloodcell.CLASS_NAMES.index(name)
        np.testing.assert_array_equal(new_kernel[:, j], kernel[:, i])
        assert new_bias[j] == bias[i]
    assert not np.array_equal(new_kernel[:, 1], kernel[:, 0])


def test_keras_private_hooks_that_augment_relies_on():
    """bloodcell.augment uses these private parts of Keras (pinned below its next minor version
    in pyproject.toml); this fails loudly when a Keras release moves them."""
    import inspect

    ops = keras.layers.RandAugment._AUGMENT_LAYERS
    assert isinstance(ops, list) and {"random_shear", "random_translation", "random_rotation", "equalization",
                                      "solarization", "random_posterization"} <= set(ops)
    assert callable(getattr(keras.layers.RandomShear, "_get_shear_matrix", None))
    assert callable(getattr(keras.layers.RandomTranslation, "_get_translation_matrix", None))
    assert callable(getattr(keras.layers.RandAugment, "_get_seed_generator", None))
    params = list(inspect.signature(keras.layers.CutMix._generate_batch_mask).parameters)
    assert params == ["self", "images_shape", "box_corners"]
    params = list(inspect.signature(keras.layers.CutMix.transform_images).parameters)
    assert params[:3] == ["self", "images", "transformation"]
    from bloodcell.augment import CutMix

    # Run on TensorFlow inside tf.data whatever Keras' backend (bloodcell.augment.layers._TFLayer,
    # _seeding.tf_seed_generator, PerImageRandAugment._run).
    from keras.src.utils.backend_utils import DynamicBackend

    assert DynamicBackend("tensorflow").name == "tensorflow"
    plain = keras.layers.Layer()
    assert isinstance(plain._convert_input_args, bool) and isinstance(plain._allow_non_tensor_positional_args, bool)
    rotation = keras.layers.RandAugment(value_range=(0, 255)).random_rotation
    assert callable(rotation.backend.set_backend) and callable(rotation.backend.reset)
    layer = CutMix(factor=1.0, seed=0)
    images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    labels = np.eye(4, dtype="float32")
    transformation = layer.get_random_transformation({"images": images, "labels": labels}, training=True)
    assert {"batch_masks", "permutation_order"} <= set(transformation)



NOISE = ("E0000", "W0000", "I0000", "retracing", "XNNPACK", "absl::InitializeLog")


def test_cli_prints_no_tensorflow_noise(tmp_path):
    """predict, a tiny train with augmentation (under op determinism) and augment-preview, in a
    process with TensorFlow's own log level untouched: nothing on stderr looks like an error."""
    from conftest import synthetic_cell
    from PIL import Image

    data = tmp_path / "data"
    for c, name in enumerate(["lymphocyte", "neutrophil"]):
        (data / name).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(synthetic_cell(48, 10 * c + i)).save(data / name / f"{i}.png")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    # One process, as a shell session of commands would be several: TensorFlow's start-up lines come once
    # a process (with the first command), the rest (retracing, XNNPACK, per-call lines) with each command.
    commands = [
        ["train", str(data), "--model", "microcell", "--input-size", "32", "--head-epochs", "1", "--finetune-epochs",
         "1", "--augment", "robust", "--val-fraction", "0.2", "--test-fraction", "0.2", "--out", str(tmp_path / "model")],
        ["predict", str(data / "lymphocyte")],
        ["augment-preview", str(data), "--preset", "domain", "-n", "4", "--out", str(tmp_path / "preview.png")],
    ]
    code = ("import sys; from bloodcell.cli import main\n"
            f"for argv in {commands!r}:\n"
            "    print('-- bloodcell', argv[0], file=sys.stderr, flush=True)\n"
            "    code = main(argv)\n"
            "    if code: sys.exit(code)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-2000:]}"
    noisy = [line for line in proc.stderr.splitlines() if any(n in line for n in NOISE)]
    assert not noisy, "TensorFlow noise on stderr (each command's output begins with '-- bloodcell'):\n" + proc.stderr[-3000:]
    assert proc.stderr.count("-- bloodcell") == 3 and (tmp_path / "preview.png").is_file()


def test_keras_train_function_retrace_warnings_are_dropped_and_others_pass(caplog):
    """TensorFlow counts Keras's per-compile train functions as one function: that warning is
    dropped (bloodcell._tf); a retracing warning about any other function still shows."""
    import logging

    import tensorflow as tf  # noqa: F401  (bloodcell._tf installed its filter on TensorFlow's logger)

    logger = logging.getLogger("tensorflow")
    template = ("%d out of the last %d calls to %s triggered tf.function retracing. Tracing is expensive "
                "and the excessive number of tracings could be due to ...")
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logger.warning(template, 5, 7, "<function TensorFlowTrainer._make_function.<locals>.multi_step_on_iterator>")
        logger.warning(template, 5, 15, "<function TensorFlowTrainer.make_predict_function.<locals>.one_step_on_data>")
        logger.warning(template, 5, 5, "<function my_step at 0x1>")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "my_step" in messages[0], messages


def test_freezing_survives_the_keras_file_copy_and_new_head(tmp_path):
    import warnings


    model = bloodcell.build_model("microcell", class_names=["a", "b", "c"], input_size=32)
    model.backbone.trainable = False  # phase 1 of the seed's transfer learning: the head alone
    x = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3)).astype("float32")
    model.compile("adam", "categorical_crossentropy")
    model.fit(x, keras.utils.to_categorical(np.arange(6) % 3, 3), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the optimizer state loads: its variables match
        again = keras.models.load_model(tmp_path / "m.keras")
    head_only = len(model.trainable_weights)
    assert head_only == 2 and not again.backbone.trainable and len(again.trainable_weights) == head_only
    assert len(model.copy().trainable_weights) == head_only
    assert len(model.with_classes(["a", "b"]).trainable_weights) == head_only
    model.backbone.trainable = True
    bn = next(layer for layer in model.backbone.layers if isinstance(layer, keras.layers.BatchNormalization))
    bn.trainable = False  # phase 2 keeps batch norm in inference mode
    assert not model.copy().get_layer("backbone").get_layer(bn.name).trainable


def test_freezing_of_unnamed_layers_survives_copies_in_one_process():
    import keras

    model = bloodcell.build_model("effnetb0", class_names=["a", "b"], input_size=32)
    inner = [layer for layer in model.backbone.layers if isinstance(layer, keras.layers.Normalization)]
    assert inner and inner[0].name.startswith("normalization")  # named by Keras' per-process counter
    for layer in (*inner, model.backbone.layers[5]):
        layer.trainable = False
    frozen = len(model.trainable_weights)
    for copy in (model.copy(), model.copy(), model.with_classes(["a", "b", "c"])):
        assert len(copy.trainable_weights) == frozen and not copy.backbone.layers[5].trainable
