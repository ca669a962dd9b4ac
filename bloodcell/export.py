"""Export a classifier to ONNX, LiteRT (TFLite) or a TensorFlow SavedModel with Keras' ``Model.export``.

Every exported model takes the same input as the Keras model, as **uint8**: one input named
``image`` of shape (N, S, S, 3), RGB values 0..255, already resized to S x S with
:func:`bloodcell.imageio.resize_image`. The cast to float32 and the backbone's normalisation are
inside the exported graph. The one output, ``output_0``, holds float32 softmax probabilities of
shape (N, num_classes) in the order of ``class_names``. A metadata JSON (class names, input size,
preprocessing) is written beside each export; see :func:`metadata_path`.
"""

from __future__ import annotations

from . import _tf  # noqa: F401,I001  (TensorFlow without its start-up log lines)
import contextlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional, Union

import keras
import numpy as np

from ._choices import EXPORT_FORMATS
from ._fs import path_text
from ._util import error_reason, sha256_file
from ._version import __version__
from ._lock import locked
from .data import is_portable_folder_name
from .errors import ConfigError, OutputExistsError
from .folder import PREPROCESSING, json_ready, preprocessing_description
from .models import ClassifierModel, walk_layers

__all__ = ["FORMATS", "INPUT_NAME", "OUTPUT_NAME", "SIGNATURE", "METADATA_NAME", "CheckedTemperature", "default_output",
           "export", "metadata_path", "uint8_model"]

FORMATS = EXPORT_FORMATS
_KERAS_FORMAT = {"onnx": "onnx", "litert": "litert", "saved_model": "tf_saved_model"}
#: Modules each format's exporter imports beyond TensorFlow and Keras.
_EXTRA_MODULES = {"onnx": ("tf2onnx", "onnx"), "litert": (), "saved_model": ()}
INSTALL_HINT = 'pip install "bloodcell[export]"'

_ONNX_KEYWORDS = {"opset_version"}
#: The oldest ONNX opset an export may ask for (the models' ops need at least this).
MIN_OPSET = 9

INPUT_NAME = "image"
OUTPUT_NAME = "output_0"  # the name Keras' export gives a single output in LiteRT and SavedModel
SIGNATURE = "serving_default"
_STAGING = ".tmp-export-"
METADATA_NAME = "bloodcell.json"  # inside a SavedModel folder


def metadata_path(out: Union[str, os.PathLike], format: str) -> Path:
    """Where :func:`export` writes the metadata JSON for an export at ``out``.

    ``model.onnx`` -> ``model.onnx.json``; ``model.tflite`` -> ``model.tflite.json``; a SavedModel
    folder keeps it inside, as ``<folder>/bloodcell.json``.
    """
    out = Path(out)
    return out / METADATA_NAME if format == "saved_model" else out.with_name(out.name + ".json")


def default_output(classifier, format: str) -> Path:
    """The output path used when none is given: ``<name>.onnx``, ``<name>.tflite`` or ``<name>_saved_model``."""
    check_format(format)
    stem = classifier.name
    # the name comes from config.json (a downloaded model's, too): a path there would write elsewhere
    if not stem or not is_portable_folder_name(stem) or stem in ("..", "."):
        stem = classifier.architecture
    return Path(f"{stem}{FORMATS[format]}" if FORMATS[format] else f"{stem}_saved_model")


def check_format(format: str) -> None:
    """Refuse an unknown format, or one whose exporter packages are not installed."""
    if not isinstance(format, str) or format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; expected one of: {', '.join(FORMATS)}")
    missing = [m for m in _EXTRA_MODULES[format] if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"exporting to {format} needs the package(s) {', '.join(missing)}, which are not installed; "
            f"install them with: {INSTALL_HINT}"
        )


def check_output(out: Path, format: str) -> None:
    """Refuse an output path of the wrong kind for ``format``, or one that exists (or its metadata file)."""
    suffix = FORMATS[format]
    if suffix and out.suffix.lower() != suffix:
        raise ConfigError(f"{out}: an export to {format} must be a file ending in {suffix}; got {out.name!r}")
    if not suffix and out.suffix.lower() in [s for s in FORMATS.values() if s]:
        raise ConfigError(f"{out}: an export to {format} is a folder; give a folder path without {out.suffix}, or "
                          f"--format {next(f for f, s in FORMATS.items() if s == out.suffix.lower())} for a file")
    if format == "saved_model" and path_text(out) != str(out):  # TensorFlow writes SavedModels by UTF-8 paths only
        raise ConfigError(f"{path_text(out)}: a SavedModel folder's path must be valid UTF-8 (TensorFlow writes no "
                          "other); choose another name")
    meta = metadata_path(out, format)
    if format != "saved_model" and meta.exists() and not out.exists():
        raise OutputExistsError(f"{meta}: already exists, left by an export that did not finish ({out.name} is "
                                "missing); delete it and export again, or choose another output path")
    for path in (out, meta):
        if path.exists() or path.is_symlink():
            raise OutputExistsError(f"{path}: already exists; refusing to overwrite it, choose another output path")


def _float32_model(classifier) -> keras.Model:
    """The classifier's model in float32 (exporters need it; a mixed-precision model is copied)."""
    model = classifier.model
    if all(layer.compute_dtype == "float32" for layer in walk_layers(model)):
        return model
    if not isinstance(model, ClassifierModel):
        raise ConfigError(
            f"model {model.name!r} computes in {model.dtype_policy.name} and was not made by "
            "bloodcell.build_model, so it cannot be rebuilt in float32 for export; save it with "
            "save_pretrained and export the loaded folder"
        )
    with _dtype_policy("float32"):
        return model.copy()


@contextlib.contextmanager
def _dtype_policy(name: str):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@keras.saving.register_keras_serializable(package="bloodcell")
class CheckedTemperature(keras.layers.Layer):
    """Probabilities at ``inside`` temperature, or ``outside`` where the out-of-distribution check
    flags the image (its score over ``threshold``), as :meth:`~bloodcell.Classifier.predict_proba`.

    The check's numbers (from a fitted :class:`~bloodcell.ood.FeatureCheck`, see
    :meth:`from_check`) are non-trainable weights: exporters freeze weights, and would turn plain
    constants into graph inputs.
    """

    def __init__(self, mean, components, variances, residual_variance: float, threshold: float, inside: float,
                 outside: float, **kwargs):
        super().__init__(**kwargs)
        self._numbers = {"mean": np.asarray(mean, np.float32).tolist(),
                         "components": np.asarray(components, np.float32).tolist(),
                         "variances": np.asarray(variances, np.float32).tolist(),
                         "residual_variance": float(residual_variance), "threshold": float(threshold),
                         "inside": float(inside), "outside": float(outside)}
        values = {"mean": mean, "components": components, "variances": variances,
                  "constants": [residual_variance, threshold, inside, outside]}
        for name, value in values.items():
            value = np.asarray(value, np.float32)
            setattr(self, name, self.add_weight(shape=value.shape, initializer=keras.initializers.Constant(value),
                                                trainable=False, name=name))

    @classmethod
    def from_check(cls, check, inside: float, outside: float, **kwargs) -> "CheckedTemperature":
        """The layer of a fitted :class:`~bloodcell.ood.FeatureCheck`."""
        return cls(check.mean, np.asarray(check.components).T, check.variances, check.residual_variance,
                   check.threshold, inside, outside, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._numbers}

    def call(self, proba, features):
        ops = keras.ops
        z = features - self.mean
        proj = ops.matmul(z, self.components)
        residual = ops.maximum(ops.sum(z * z, axis=-1) - ops.sum(proj * proj, axis=-1), 0.0)
        score = ops.sum(proj * proj / self.variances, axis=-1) + residual / self.constants[0]
        temperature = ops.where(score > self.constants[1], self.constants[3], self.constants[2])
        return ops.softmax(ops.log(ops.maximum(proba, 1e-12)) / temperature[:, None], axis=-1)


@contextlib.contextmanager
def _constant_statistics(model: keras.Model):
    """Keras' Normalization layers (inside the EfficientNets) hold their mean and variance as eager
    tensors, which tf2onnx would turn into extra graph inputs: inside, they are NumPy constants."""
    layers = [layer for layer in walk_layers(model) if isinstance(layer, keras.layers.Normalization)
              and getattr(layer, "mean", None) is not None]
    saved = [(layer.mean, layer.variance) for layer in layers]
    try:
        for layer in layers:
            layer.mean, layer.variance = np.asarray(layer.mean), np.asarray(layer.variance)
        yield
    finally:
        for layer, (mean, variance) in zip(layers, saved):
            layer.mean, layer.variance = mean, variance


def uint8_model(classifier) -> keras.Model:
    """The classifier's model behind a uint8 input named ``image``, cast to float32 inside the graph,
    all of it in float32 whatever Keras' global dtype policy."""
    size = classifier.input_size
    model = _float32_model(classifier)
    check, outside = classifier.feature_check, classifier.temperature_outside
    with _dtype_policy("float32"):
        inputs = keras.Input((size, size, 3), dtype="uint8", name=INPUT_NAME)
        x = keras.ops.cast(inputs, "float32")
        if check is not None and outside is not None:
            # As predict_proba: the cells the feature check flags get temperature_outside, in the same pass.
            from .ood import inference_model

            layer = check.for_model(model).layer  # by position: a float32 copy numbers unnamed layers anew
            outputs, features = inference_model(model, layer)(x)
            outputs = CheckedTemperature.from_check(check, classifier.temperature, outside,
                                                    name="checked_temperature")(outputs, features)
        else:
            outputs = model(x)
            if classifier.temperature != 1.0:  # the calibrated probabilities predict_proba gives
                logp = keras.ops.log(keras.ops.maximum(outputs, 1e-12))
                outputs = keras.ops.softmax(logp / classifier.temperature, axis=-1)
        return keras.Model(inputs, outputs, name=f"{classifier.model.name}_uint8")


@contextlib.contextmanager
def _quiet_converters():
    """Hide converter chatter that is not an error.

    tf2onnx logs a traceback at WARNING when one pass of its transpose optimizer meets the scalar
    ``+ 3`` of hard-swish; the pass is retried on the next iteration and the graph comes out fully
    optimised. Keras' tf2onnx patch triggers a NumPy ``np.object`` FutureWarning.
    """
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def _finish_onnx(path: Path, metadata: dict[str, Any]) -> None:
    """Name the output and batch axis as in the other formats and embed the class names."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    constants = {t.name for t in graph.initializer}  # listed as inputs by graphs of IR version < 4
    extra = [i.name for i in graph.input if i.name != INPUT_NAME and i.name not in constants]
    if extra:  # a runtime would refuse to run it without them
        raise ConfigError(f"ONNX export: the graph needs inputs besides {INPUT_NAME!r} ({', '.join(extra[:3])}): a "
                          "layer's constants became inputs; export to 'saved_model' or 'litert' instead, and report it")
    old = graph.output[0].name
    for node in graph.node:
        node.output[:] = [OUTPUT_NAME if o == old else o for o in node.output]
        node.input[:] = [OUTPUT_NAME if i == old else i for i in node.input]
    graph.output[0].name = OUTPUT_NAME
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    for key in ("class_names", "input_size", "name", "architecture"):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(metadata[key])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _calibration(classifier) -> dict[str, Any]:
    """What of bloodcell's calibration and review flag the exported graph holds, and what a deployer adds."""
    outside = classifier.temperature_outside
    return {
        "temperature": classifier.temperature,
        "temperature_outside": outside,
        "in_graph": ("output_0 is already divided by the temperature" + (
            "; images the out-of-distribution check flags get temperature_outside instead" if outside is not None else "")),
        "review_below": classifier.review_below,
        "review": ("flag an image for review when its highest probability in output_0 is below review_below, as "
                   "bloodcell predict does (bloodcell also flags the images its out-of-distribution and colour "
                   "checks flag, which the exported graph does not output)" if classifier.review_below is not None
                   else "the model has no fitted review threshold"),
    }


def _metadata(classifier, format: str, out: Path, options: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """What the JSON file beside an export says of it (NumPy numbers as numbers); ``options``: the extra
    keywords given to ``keras.Model.export``."""
    import tensorflow as tf

    model = classifier.model
    size = classifier.input_size
    return json_ready({
        "format": format,
        "model": out.name,
        "name": classifier.name,
        "architecture": classifier.architecture,
        "class_names": list(classifier.class_names),
        "input_size": size,
        "input": {
            "name": INPUT_NAME,
            "dtype": "uint8",
            "shape": [None, size, size, 3],
            "layout": "NHWC, RGB, values 0..255",
        },
        "output": {
            "name": OUTPUT_NAME,
            "dtype": "float32",
            "shape": [None, len(classifier.class_names)],
            "meaning": "softmax probabilities, one column per entry of class_names, in that order",
        },
        "signature": None if format == "onnx" else SIGNATURE,
        "preprocessing": {
            **(preprocessing_description(model.spec) if isinstance(model, ClassifierModel) else PREPROCESSING),
            "input": "RGB uint8 values 0..255, shape (N, S, S, 3); the cast to float32 is inside the exported graph",
        },
        "calibration": _calibration(classifier),
        "metrics": classifier.metrics,
        **({"export_options": {k: repr(v) for k, v in options.items()},
            "measured_on": "calibration and metrics were measured on the Keras model, not on this export, whose "
                           "probabilities these options (quantisation...) may change"} if options else {}),
        "bloodcell_version": __version__,
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
    }, "the export's metadata")


def export(
    classifier,
    out: Union[str, os.PathLike, None] = None,
    *,
    format: str = "onnx",
    **kwargs: Any,
) -> Path:
    """Export a classifier for inference without bloodcell; returns the path of the exported model.

    ``classifier`` is a :class:`~bloodcell.Classifier` (``bloodcell.load_classifier(source)`` for
    a zoo name, folder or Hub source). ``format`` is ``"onnx"`` (a ``.onnx`` file, via tf2onnx),
    ``"litert"`` (a ``.tflite`` file) or ``"saved_model"`` (a folder). ``out`` defaults to
    :func:`default_output`; it must not exist, nor must its metadata file (:func:`metadata_path`):
    nothing is overwritten, and nothing appears at ``out`` unless the export succeeds. Extra
    ``kwargs`` go to ``keras.Model.export`` (e.g. ``opset_version`` for ONNX, ``optimizations``
    for LiteRT; quantising changes the probabilities).
    """
    if not hasattr(classifier, "model") or not hasattr(classifier, "class_names"):
        raise ConfigError(
            f"export: expected a bloodcell Classifier, got {type(classifier).__name__}; load one with "
            "bloodcell.load_classifier(source) and call its .export()"
        )
    check_format(format)
    unknown = sorted(set(kwargs) - _ONNX_KEYWORDS) if format == "onnx" else []
    if unknown:  # Keras ignores them: a misspelt option would pass unnoticed
        raise ConfigError(f"export to onnx takes {', '.join(sorted(_ONNX_KEYWORDS))} as extra keywords, got "
                          f"{', '.join(unknown)}; drop or correct them")
    if format == "onnx" and "opset_version" in kwargs:
        opset = kwargs["opset_version"]
        if isinstance(opset, bool) or not isinstance(opset, int):
            raise ConfigError(f"opset_version: expected an ONNX opset number such as 17, got {opset!r}")
        from tf2onnx.constants import OPSET_TO_IR_VERSION

        newest = max(OPSET_TO_IR_VERSION)
        if not MIN_OPSET <= opset <= newest:  # tf2onnx fails on older ones with its own tracebacks
            raise ConfigError(f"opset_version: expected {MIN_OPSET} to {newest} (what tf2onnx converts to), got {opset}")
    if out is not None:
        if not isinstance(out, (str, os.PathLike)):
            raise ConfigError(f"out: expected a path (str or Path), got {type(out).__name__} {out!r}")
        out = Path(out)
        check_output(out, format)
    if out is None:
        out = default_output(classifier, format)
        check_output(out, format)
    metadata = _metadata(classifier, format, out, kwargs)
    model = uint8_model(classifier)
    size = classifier.input_size
    signature = [keras.InputSpec(shape=(None, size, size, 3), dtype="uint8", name=INPUT_NAME)]

    out.parent.mkdir(parents=True, exist_ok=True)
    with locked(out, flag="--out"), tempfile.TemporaryDirectory(dir=out.parent, prefix=f"{_STAGING}{out.name}-") as tmp:
        # left by a killed export of this path (tempfile's 8 characters, without "-": not a staging folder
        # of another path whose name starts with this one's, which may be in use)
        mine = re.compile(re.escape(f"{_STAGING}{out.name}-") + r"[a-z0-9_]{8}")
        for stale in out.parent.glob(f"{_STAGING}{out.name}-*"):
            if stale.name != Path(tmp).name and mine.fullmatch(stale.name):
                shutil.rmtree(stale, ignore_errors=True)
        staged = Path(tmp) / out.name
        with _quiet_converters(), _constant_statistics(model):
            try:
                model.export(str(staged), format=_KERAS_FORMAT[format], verbose=False, input_signature=signature, **kwargs)
            except (TypeError, ValueError) as error:
                if not kwargs:
                    raise
                raise ConfigError(f"export to {format} with {', '.join(f'{k}={v!r}' for k, v in kwargs.items())}: "
                                  f"{error_reason(error)}; check those keywords (they go to keras.Model.export)") from None
        if format == "onnx":
            _finish_onnx(staged, metadata)
        if format != "saved_model":
            metadata["sha256"] = sha256_file(staged)
        staged_meta = metadata_path(staged, format)
        staged_meta.write_text(json.dumps(metadata, indent=2) + "\n")
        check_output(out, format)  # something may have appeared there while exporting
        if format != "saved_model":  # the metadata first: a model file never appears without it
            os.rename(staged_meta, metadata_path(out, format))
        os.rename(staged, out)
    return out
