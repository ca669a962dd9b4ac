"""Export to ONNX, LiteRT and SavedModel; the exported models must match Keras' probabilities."""

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

import bloodcell
from bloodcell._util import sha256_file
from bloodcell.cli import main
from bloodcell.errors import BloodcellError, ConfigError
from bloodcell.export import export, metadata_path, uint8_model
from bloodcell.folder import preprocessing_description

EXAMPLE_IMAGES = Path(__file__).resolve().parents[1] / "examples" / "images"
TOLERANCE = 1e-4


def _randomize(model: keras.Model, seed: int = 0) -> None:
    """Random weights that give varied, unsaturated probabilities (a fresh head outputs 1/C everywhere)."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        shape = tuple(v.shape)
        if v.path.endswith(("moving_variance", "gamma")):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) >= 2:
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:-1])), shape)
            if v.path.startswith("predictions"):
                value *= 10.0
        else:
            value = rng.normal(0.0, 0.1, shape)
        v.assign(value.astype("float32"))


def _images(size: int) -> np.ndarray:
    """The 16 sample cells plus two noise images, resized as bloodcell does."""
    noise = np.random.default_rng(1).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    files = sorted(EXAMPLE_IMAGES.glob("*.jpg"))
    return np.concatenate([bloodcell.imageio.load_images(files, size), noise])


@pytest.fixture(scope="module")
def micro():
    clf = bloodcell.Classifier(bloodcell.build_model("microcell", input_size=32), name="micro")
    _randomize(clf.model)
    return clf


@pytest.fixture(scope="module")
def default():
    """The bundled mnv3s.pbc96: keras.applications preprocessing layers and hard-swish, trained weights."""
    return bloodcell.load_classifier("mnv3s.pbc96")


@pytest.fixture(scope="module")
def exports(tmp_path_factory, micro, default):
    """Each export made once per module: {(model, format): path}. Extras missing -> those entries absent."""
    root = tmp_path_factory.mktemp("exports")
    made = {}
    for key, clf in (("micro", micro), ("default", default)):
        for fmt, name in (("onnx", "m.onnx"), ("litert", "m.tflite"), ("saved_model", "sm")):
            if fmt == "saved_model" and key == "default":
                continue  # SavedModel is the LiteRT converter's input already; one model is enough here
            try:
                made[key, fmt] = export(clf, root / key / name, format=fmt)
            except BloodcellError as exc:
                if "pip install" not in str(exc):
                    raise
    return made


def _get(exports, key, fmt) -> Path:
    if (key, fmt) not in exports:
        pytest.skip(f"{fmt} export extras not installed (pip install \"bloodcell[export]\")")
    return exports[key, fmt]


def _reference(clf) -> tuple[np.ndarray, np.ndarray]:
    x = _images(clf.input_size)
    ref = clf.predict_proba(x)
    assert ref.std(axis=0).max() > 1e-3, "probabilities do not vary across images: the comparison would be vacuous"
    return x, ref


@pytest.mark.parametrize("key", ["micro", "default"])
def test_onnx_matches_keras(exports, key, request):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install \"bloodcell[export]\")")
    path = _get(exports, key, "onnx")
    clf = request.getfixturevalue(key)
    x, ref = _reference(clf)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, inp.shape) == ("image", "tensor(uint8)", ["batch", clf.input_size, clf.input_size, 3])
    assert (out.name, out.shape) == ("output_0", ["batch", len(clf.class_names)])
    proba = session.run(None, {"image": x})[0]
    assert np.abs(proba - ref).max() <= TOLERANCE
    embedded = session.get_modelmeta().custom_metadata_map
    assert json.loads(embedded["class_names"]) == list(clf.class_names)
    meta = json.loads(metadata_path(path, "onnx").read_text())
    assert meta["class_names"] == list(clf.class_names) and meta["input_size"] == clf.input_size
    assert meta["input"]["dtype"] == "uint8" and meta["sha256"] == sha256_file(path)
    # as the model's config.json says (the default normalises stain in the graph) and its review threshold
    assert meta["preprocessing"]["normalisation"] == preprocessing_description(clf.model.spec)["normalisation"]
    assert meta["calibration"]["temperature"] == clf.temperature and meta["calibration"]["review_below"] == clf.review_below


def _litert_interpreter(path: Path):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        tf = pytest.importorskip("tensorflow")
        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=str(path))


@pytest.mark.parametrize("key", ["micro", "default"])
def test_litert_matches_keras(exports, key, request):
    path = _get(exports, key, "litert")
    clf = request.getfixturevalue(key)
    x, ref = _reference(clf)
    interpreter = _litert_interpreter(path)
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["image"], "outputs": ["output_0"]}}
    runner = interpreter.get_signature_runner("serving_default")
    assert runner.get_input_details()["image"]["dtype"] == np.uint8
    proba = runner(image=x)["output_0"]
    assert proba.shape == ref.shape
    assert np.abs(proba - ref).max() <= TOLERANCE
    meta = json.loads(metadata_path(path, "litert").read_text())
    assert meta["class_names"] == list(clf.class_names) and meta["signature"] == "serving_default"


def test_saved_model_matches_keras(exports, micro):
    import tensorflow as tf

    path = _get(exports, "micro", "saved_model")
    x, ref = _reference(micro)
    loaded = tf.saved_model.load(str(path))
    proba = loaded.signatures["serving_default"](image=tf.constant(x))["output_0"].numpy()
    assert np.abs(proba - ref).max() <= TOLERANCE
    assert np.abs(loaded.serve(x).numpy() - ref).max() <= TOLERANCE
    meta = json.loads((path / "bloodcell.json").read_text())
    assert meta["format"] == "saved_model" and meta["class_names"] == list(micro.class_names)


def test_cli_exports_a_saved_folder(tmp_path, micro):
    pytest.importorskip("tf2onnx", reason="tf2onnx not installed (pip install \"bloodcell[export]\")")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    micro.save_pretrained(tmp_path / "folder")
    out = tmp_path / "cli" / "micro.onnx"
    assert main(["export", str(tmp_path / "folder"), "--format", "onnx", "--out", str(out)]) == 0
    x, ref = _reference(micro)
    proba = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    assert np.abs(proba - ref).max() <= TOLERANCE


def test_cli_export_into_a_folder_it_cannot_write_names_the_path_before_any_work(capsys):
    from pathlib import Path

    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc, a folder no one can create files in, root included")
    assert main(["export", "--format", "litert", "--out", "/proc/m.tflite"]) == 1
    err = capsys.readouterr().err
    assert "/proc/m.tflite" in err and "bloodcell-lock" not in err
    cwd = os.getcwd()
    try:  # no --out: the working directory takes the export, and is named (not a lock file in it)
        os.chdir("/proc")
        assert main(["export", "--format", "litert"]) == 1
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert "error: /proc: " in err and "bloodcell-lock" not in err and "tflite" not in err


def test_refuses_to_overwrite(tmp_path, micro, capsys):
    out = tmp_path / "model.tflite"
    out.write_bytes(b"keep me")
    with pytest.raises(BloodcellError, match="already exists; refusing to overwrite"):
        export(micro, out, format="litert")
    assert out.read_bytes() == b"keep me"

    folder = tmp_path / "sm"
    metadata_path(folder, "saved_model").parent.mkdir()
    metadata_path(folder, "saved_model").write_text("{}")
    with pytest.raises(BloodcellError, match="already exists"):
        export(micro, folder, format="saved_model")
    assert metadata_path(folder, "saved_model").read_text() == "{}"

    meta_only = tmp_path / "other.tflite"
    metadata_path(meta_only, "litert").write_text("{}")
    with pytest.raises(BloodcellError, match="other.tflite.json: already exists"):
        export(micro, meta_only, format="litert")
    assert not meta_only.exists()

    assert main(["export", "--format", "litert", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bloodcell export: error:") and "already exists" in err and "\n" not in err


def test_the_uint8_model_with_its_feature_check_saves_and_reloads(tmp_path, default):
    """uint8_model is public: the model it gives (the default's has the out-of-distribution temperature
    layer) is a Keras model like any other, saved and reloaded whole."""
    model = uint8_model(default)
    assert any(layer.name == "checked_temperature" for layer in model.layers)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    x = _images(default.input_size)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_unknown_or_wrong_export_keywords_are_named(tmp_path, micro):
    with pytest.raises(ConfigError, match="export to onnx takes opset_version as extra keywords, got opset"):
        export(micro, tmp_path / "m.onnx", format="onnx", opset=17)
    with pytest.raises(ConfigError, match="opset_version: expected an ONNX opset number"):
        export(micro, tmp_path / "m.onnx", format="onnx", opset_version="17")
    for old_or_unknown in (1, 99):  # tf2onnx's own traceback and a raw ONNX error for 1
        with pytest.raises(ConfigError, match=r"opset_version: expected 9 to \d+ \(what tf2onnx converts to\)"):
            export(micro, tmp_path / "m.onnx", format="onnx", opset_version=old_or_unknown)
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_and_wrong_suffix(tmp_path, micro):
    with pytest.raises(BloodcellError, match="unknown export format 'tflite'; expected one of: onnx, litert, saved_model"):
        export(micro, tmp_path / "m.tflite", format="tflite")
    with pytest.raises(BloodcellError, match=r"unknown export format \['onnx'\]"):
        export(micro, tmp_path / "m.onnx", format=["onnx"])
    with pytest.raises(BloodcellError, match="out: expected a path"):
        export(micro, 123, format="onnx")
    with pytest.raises(BloodcellError, match=r"must be a file ending in \.tflite"):
        export(micro, tmp_path / "m.onnx", format="litert")
    with pytest.raises(BloodcellError, match=r"an export to saved_model is a folder; .* or --format onnx for a file"):
        export(micro, tmp_path / "sm.onnx", format="saved_model")
    assert list(tmp_path.iterdir()) == []


def test_missing_extras_name_the_install_command(tmp_path, micro, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    with pytest.raises(BloodcellError, match=r'needs the package\(s\) tf2onnx.*pip install "bloodcell\[export\]"'):
        export(micro, tmp_path / "m.onnx", format="onnx")


def test_uint8_model_rebuilds_mixed_precision_in_float32(micro):
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = bloodcell.build_model("microcell", input_size=32)
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(micro.model.get_weights())
    wrapped = uint8_model(bloodcell.Classifier(mixed))
    assert wrapped.inputs[0].dtype == "uint8"
    (inner,) = [layer for layer in wrapped.layers if isinstance(layer, keras.Model)]
    assert {layer.compute_dtype for layer in inner._flatten_layers(include_self=False)} == {"float32"}
    x = _images(32)
    assert np.abs(np.asarray(wrapped(x)) - micro.predict_proba(x)).max() <= TOLERANCE


def test_uint8_model_is_float32_under_a_global_mixed_policy(default, micro):
    """A GPU notebook sets mixed_float16 once: the exported graph, the feature check's temperature layer
    included, still computes as predict_proba does (float16 scores flagged cells wrongly)."""
    keras.config.set_dtype_policy("mixed_float16")
    try:
        wrapped = uint8_model(default)
    finally:
        keras.config.set_dtype_policy("float32")
    assert {layer.compute_dtype for layer in wrapped._flatten_layers(include_self=False)
            if not isinstance(layer, keras.layers.InputLayer)} == {"float32"}
    x = _images(default.input_size)
    out = np.asarray(wrapped(x))
    assert out.dtype == np.float32 and np.abs(out - default.predict_proba(x, verbose=0)).max() <= TOLERANCE
    # The metadata: NumPy numbers as numbers, and what options were given to keras.Model.export
    from bloodcell.export import _metadata

    micro.metrics = {"accuracy": np.float32(0.5)}
    meta = _metadata(micro, "litert", Path("m.tflite"), {"optimizations": ["DEFAULT"]})
    assert meta["metrics"] == {"accuracy": 0.5} and meta["export_options"] == {"optimizations": "['DEFAULT']"}
    assert "not on this export" in meta["measured_on"] and "export_options" not in _metadata(micro, "onnx", Path("m.onnx"))
    micro.metrics = {}
    # TensorFlow writes a SavedModel by a UTF-8 path only: another name is refused before any work
    from bloodcell.export import check_output

    with pytest.raises(bloodcell.ConfigError, match=r"caf\\xe9_sm: a SavedModel folder's path must be valid UTF-8"):
        check_output(Path(os.fsdecode(b"caf\xe9_sm")), "saved_model")


def test_onnx_export_of_an_efficientnet_runs_with_the_image_alone(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install \"bloodcell[export]\")")
    pytest.importorskip("tf2onnx", reason="tf2onnx not installed (pip install \"bloodcell[export]\")")
    clf = bloodcell.Classifier(bloodcell.build_model("effnetb0", num_classes=3, class_names=["a", "b", "c"],
                                                     input_size=32), name="eff")
    _randomize(clf.model)
    path = export(clf, tmp_path / "eff.onnx", format="onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    x = _images(32)
    assert np.abs(session.run(None, {"image": x})[0] - clf.predict_proba(x)).max() <= TOLERANCE


def test_the_default_output_is_a_file_here_and_other_exports_staging_is_left_alone(tmp_path, micro, monkeypatch):
    """A model's name (from its config.json, perhaps downloaded) that is a path does not make the
    default output land elsewhere; a killed export's staging folder of this path is removed, while
    that of an export to another path whose name starts with this one's (m-v2) is left to it."""
    import copy

    from bloodcell.export import default_output

    clf = copy.copy(micro)
    for name in ("../esc", "org/model", ".hidden", ""):
        clf.name = name
        assert default_output(clf, "onnx") == Path(f"{micro.architecture}.onnx")
    clf.name = "my-model.v1"
    assert default_output(clf, "saved_model") == Path("my-model.v1_saved_model")
    monkeypatch.chdir(tmp_path)
    stale, other = Path(".tmp-export-m-abcd1234"), Path(".tmp-export-m-v2-abcd1234")
    for folder in (stale, other):
        (folder / "x").mkdir(parents=True)
    export(micro, "m", format="saved_model")
    assert Path("m").is_dir() and not stale.exists() and (other / "x").is_dir()
