import importlib.util
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
import pytest
from PIL import Image

from hub_server import hub_server  # noqa: E402,F401  (fixture)

#: The modules whose tests take longest together (``pytest --durations=0``, summed per module), longest
#: first. xdist (``--dist loadscope --no-loadscope-reorder``) hands whole modules to its workers in the
#: order collected: the longest first keep both workers busy to the end, instead of one running the
#: longest module alone while the other waits.
SLOWEST_FIRST = ("test_training.py", "test_design.py", "test_examples.py", "test_processes.py", "test_transfer.py",
                 "test_promises.py", "test_augment.py", "test_export.py", "test_cli.py", "test_pipeline.py",
                 "test_models.py", "test_explain.py", "test_evaluation.py", "test_calibration.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the others keep their order


def synthetic_cell(size: int = 64, seed: int = 0) -> np.ndarray:
    """A stained-cell-like uint8 RGB image: pale pink background, purple nucleus, pink cytoplasm."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    img = np.empty((size, size, 3), np.float32)
    img[:] = (232, 214, 205) + rng.normal(0, 4, (size, size, 3))
    cx, cy = 0.5 + rng.uniform(-0.1, 0.1, 2)
    r = rng.uniform(0.25, 0.35)
    cyto = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
    img[cyto] = (205, 160, 185) + rng.normal(0, 6, (cyto.sum(), 3))
    nuc = ((xx - cx - rng.uniform(-0.05, 0.05)) / 0.7) ** 2 + (yy - cy) ** 2 < (r * rng.uniform(0.45, 0.7)) ** 2
    img[nuc] = (110, 60, 140) + rng.normal(0, 8, (nuc.sum(), 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def cells():
    return np.stack([synthetic_cell(64, i) for i in range(6)])


@pytest.fixture
def image_dir(tmp_path):
    """A folder of small images in several formats and modes."""
    d = tmp_path / "images"
    d.mkdir()
    cell = synthetic_cell(80, 1)
    Image.fromarray(cell).save(d / "rgb.jpg", quality=95)
    Image.fromarray(cell).save(d / "rgb.png")
    Image.fromarray(cell).convert("L").save(d / "grey.png")
    Image.fromarray(cell).convert("RGBA").save(d / "rgba.png")
    Image.fromarray(cell).convert("P").save(d / "palette.png")
    Image.fromarray((cell[..., 0].astype(np.uint16) * 257)).save(d / "grey16.png")
    return d


def load_script(name: str):
    """The module of ``scripts/<name>.py`` (scripts are not a package)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

