"""Synthetic stained "cells" and non-cell images for the data and cleaning tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def make_cell(size: int, rng: np.random.Generator) -> np.ndarray:
    """A pinkish smear background with pale red cells around a purple-nucleated cell near the middle."""
    yy, xx = np.mgrid[:size, :size] / size
    img = np.empty((size, size, 3), np.float32)
    img[:] = np.array((236, 218, 206)) + rng.normal(0, 6, 3)
    for _ in range(rng.integers(1, 5)):  # red blood cells, anywhere
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.2)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
        img[disc] = np.array((218, 170, 175)) + rng.normal(0, 5, 3)
    cx, cy = 0.5 + rng.uniform(-0.08, 0.08, 2)
    r = rng.uniform(0.18, 0.36)
    cyto = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
    img[cyto] = np.array((200, 165, 195)) + rng.normal(0, 8, 3)
    for _ in range(rng.integers(1, 4)):  # nucleus lobes
        lx, ly = cx + rng.uniform(-0.5, 0.5) * r, cy + rng.uniform(-0.5, 0.5) * r
        lr = r * rng.uniform(0.3, 0.6)
        lobe = ((xx - lx) / rng.uniform(0.7, 1.3)) ** 2 + (yy - ly) ** 2 < lr**2
        img[lobe & cyto] = np.array((105, 55, 140)) + rng.normal(0, 10, 3)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_cells(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([make_cell(size, rng) for _ in range(n)])


def _text(size: int, rng: np.random.Generator) -> np.ndarray:
    im = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default()
    for row in range(0, size, 12):
        words = "".join(chr(c) for c in rng.integers(65, 91, 12))
        draw.text((2, row), words, fill=(0, 0, 0), font=font)
    return np.asarray(im)


def _gradient(size: int, rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0, 1, size)
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = t[:, None, None] * a + (1 - t[:, None, None]) * b
    return np.broadcast_to(ramp, (size, size, 3)).astype(np.uint8).copy()


def _checkerboard(size: int, rng: np.random.Generator) -> np.ndarray:
    k = int(rng.integers(4, 12))
    board = ((np.arange(size)[:, None] // k + np.arange(size)[None] // k) % 2).astype(bool)
    c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    return np.where(board[..., None], c1, c2).astype(np.uint8)


def _photo_noise(size: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth coloured noise: a stand-in for a natural photograph."""
    small = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)).astype(np.float32)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


_PALETTE = [(230, 30, 30), (30, 170, 60), (40, 80, 220), (250, 210, 20), (20, 200, 220), (250, 140, 0),
            (20, 20, 20), (255, 255, 255), (120, 200, 60)]


def _cartoon(size: int, rng: np.random.Generator) -> np.ndarray:
    """Flat shapes in saturated comic colours (a pink disc with a purple blob would be a cell drawing)."""
    im = Image.new("RGB", (size, size), _PALETTE[rng.integers(len(_PALETTE))])
    draw = ImageDraw.Draw(im)
    for _ in range(4):
        x0, y0 = (int(v) for v in rng.integers(0, size // 2, 2))
        w, h = (int(v) for v in rng.integers(8, size // 2, 2))
        x1, y1 = x0 + w, y0 + h
        colour = _PALETTE[rng.integers(len(_PALETTE))]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour, outline=(0, 0, 0))
    return np.asarray(im)


NON_CELL_KINDS = {
    "text": _text,
    "gradient": _gradient,
    "checkerboard": _checkerboard,
    "photo_noise": _photo_noise,
    "cartoon": _cartoon,
}


def make_non_cells(n_per_kind: int, size: int = 64, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: np.stack([f(size, rng) for _ in range(n_per_kind)]) for k, f in NON_CELL_KINDS.items()}


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def brighten(image: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(image.astype(np.float32) * factor, 0, 255).round().astype(np.uint8)


def resized_copy(image: np.ndarray, intermediate: int) -> np.ndarray:
    """The image resized to ``intermediate`` pixels and back (what a re-saved, rescaled copy looks like)."""
    size = image.shape[0]
    small = Image.fromarray(image).resize((intermediate, intermediate), Image.Resampling.BILINEAR)
    return np.asarray(small.resize((size, size), Image.Resampling.LANCZOS))
