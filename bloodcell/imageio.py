"""Reading and resizing images: the one code path shared by training, evaluation and inference.

Every image that reaches a model goes through :func:`resize_image`, so a model sees pixels
prepared the same way at training and at prediction time.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DataError, ImageReadError

__all__ = ["IMAGE_EXTENSIONS", "CAMERA_BITS", "MAX_PIXELS", "MIN_SIDE", "as_rgb_array", "check_image_header",
           "find_image_files", "image_files_under", "is_image_file", "load_image", "load_images", "other_files_under",
           "read_image", "resize_image", "resize_images"]


class UnreadableFileError(ImageReadError):
    """A file the process may not read (its permissions): the image may be intact, so data loading
    stops on it rather than dropping it as damaged."""


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm",
                    ".pnm", ".pbm", ".apng", ".avif", ".jp2", ".j2k", ".jpx", ".jpf", ".tga", ".qoi")
#: Bit depths that cameras store (a 16-bit container holding 12-bit data is read as 12-bit).
CAMERA_BITS = (8, 10, 12, 14, 16)
#: Images with more pixels than this are refused (JPEGs are first decoded at a reduced scale).
MAX_PIXELS = 64_000_000
#: Resampling filter of :func:`resize_image` (the one pbc96 was prepared with).
RESAMPLE = Image.Resampling.LANCZOS
#: A float image whose values all lie in 0..FLOAT_01_LIMIT is taken for a 0..1 image and refused.
FLOAT_01_LIMIT = 2.0
#: Images with a side under this many pixels are refused: they cannot show a cell.
MIN_SIDE = 8
#: Background that transparent pixels are composited onto (a bright slide).
BACKGROUND = (255, 255, 255)

PathLike = Union[str, os.PathLike]
ImageLike = Union[PathLike, Image.Image, np.ndarray]


def _pil_to_rgb(img: Image.Image, name: str) -> np.ndarray:
    """Convert any PIL mode to a uint8 RGB array (16-bit scaled, alpha composited on white)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img)
        if arr.dtype != np.uint8:
            arr = _high_bit_depth_to_uint8(np.clip(arr.astype(np.int64), 0, 65535))
        return np.repeat(arr[..., None], 3, axis=-1)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ImageReadError(f"{name}: contains NaN or infinite pixel values; replace them (np.nan_to_num) or "
                                 "export the image again")
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0))
        scale = 1.0 if hi <= 1.01 else 255.0
        if lo < -0.01 * scale or hi > 1.01 * scale:  # rounding of a processed image aside
            raise ImageReadError(f"{name}: 32-bit float pixel values {lo:g}..{hi:g}, expected 0..1 or 0..255; save the "
                                 "image as 8-bit (or 16-bit integer), e.g. Image > Type > 8-bit in ImageJ/Fiji")
        if scale == 1.0:  # a float image in the 0..1 convention
            arr = arr * 255.0
        return np.repeat(np.clip(np.rint(arr), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def _high_bit_depth_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Integer pixels above 8 bits to uint8, by the camera bit depth (:data:`CAMERA_BITS`) the values
    fit in: 12-bit camera data stored in 16-bit files keeps its contrast instead of turning
    near-black, and one bright pixel cannot halve the image's brightness unless it needs a deeper camera."""
    used = int(arr.max(initial=0)).bit_length()
    bits = next((b for b in CAMERA_BITS if b >= used), used)
    return (arr >> max(bits - 8, 0)).astype(np.uint8)


_PIL_WARNINGS = threading.Lock()


@contextlib.contextmanager
def _named_pil_warnings(path: Path):
    """Re-issue the warnings PIL gives inside the block with ``path`` in front; drop its decompression-bomb
    warning, which :data:`MAX_PIXELS` (checked before decoding) replaces. ``catch_warnings`` is process-wide,
    so reader threads take turns (the block only reads headers)."""
    with _PIL_WARNINGS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    for w in caught:
        if issubclass(w.category, Image.DecompressionBombWarning):
            continue
        if "PIL" in Path(w.filename).parts:
            warnings.warn(f"{path}: {w.message}", UserWarning, stacklevel=4)
        else:  # another thread's warning, given while the filter was ours
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def read_image(source: Union[PathLike, Image.Image], *, max_pixels: int | None = None,
               name: str | None = None) -> np.ndarray:
    """Read a file path or PIL image as a uint8 RGB array of shape (H, W, 3).

    Greyscale, palette, RGBA and 16-bit images are converted. Raises :class:`ImageReadError`
    (a ``ValueError``) naming the file (or ``name``, for a PIL image) when it is missing, empty, not
    an image, truncated or too large.
    """
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(source, Image.Image):
        name = name or "PIL image"
        if source.width * source.height > limit:
            raise ImageReadError(
                f"{name}: {source.width}x{source.height} pixels is over the {limit:,}-pixel limit; downscale it first"
            )
        try:
            return _pil_to_rgb(ImageOps.exif_transpose(source), name)  # as a file read by path
        except ImageReadError:
            raise
        except MemoryError:
            raise
        except Exception as exc:
            raise ImageReadError(f"{name}: the PIL image is damaged, truncated or closed ({exc or type(exc).__name__}); "
                                 "open it again, or pass its path") from None
    if not isinstance(source, (str, os.PathLike)):
        raise ImageReadError(f"{name or 'image'}: expected a path, a PIL image or an array, got {type(source).__name__}")
    path = Path(source)
    try:
        exists = path.exists()
    except OSError as exc:  # a name too long for the file system, say
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror or exc}); check the path") from None
    if not exists:
        if path.is_symlink():
            raise ImageReadError(f"{path}: a link to a missing file ({os.readlink(path)}); fix or remove the link")
        raise ImageReadError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, expected an image file; list its images with "
                             "bloodcell.imageio.find_image_files([folder]) (or run bloodcell predict FOLDER)")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: the file is empty, expected an image (PNG, JPEG, ...)")
    with _decode_errors(path):
        with _named_pil_warnings(path):  # headers and EXIF: PIL's warnings about them name no file
            img = Image.open(path)
            tiles = list(img.tile)
            try:
                if img.format != "PNG":  # a PNG's EXIF may follow its pixels: reading it decodes the image
                    img.getexif()
            except BaseException:
                img.close()
                raise
        with img:
            if img.width * img.height > limit and img.format == "JPEG":
                # Decode at 1/2, 1/4 or 1/8 scale: the full-size bitmap is never held.
                scale = next((s for s in (2, 4, 8) if img.width * img.height <= limit * s * s), 8)
                img.draft("RGB", (-(-img.width // scale), -(-img.height // scale)))
            if img.width * img.height > limit:
                raise ImageReadError(
                    f"{path}: {img.width}x{img.height} pixels is over the {limit:,}-pixel limit; "
                    "downscale the image first"
                )
            # A phone's JPEG (MPO) holds a second, smaller picture; a TIFF stack or GIF holds pages.
            frames = getattr(img, "n_frames", 1) if img.format != "MPO" else 1
            deep_colour = img.mode in ("RGB", "RGBA") and any(_rawmode(t).endswith(("16B", "16L", "16N", ";16"))
                                                              for t in tiles)
            img = ImageOps.exif_transpose(img)
            img.load()
            rgb = _pil_to_rgb(img, str(path))
            if deep_colour and rgb[..., :3].max(initial=0) < 32:
                # PIL keeps the top 8 of 16 bits of colour: 12-bit camera data comes out 0..15, nearly black
                raise ImageReadError(f"{path}: 16-bit colour whose values use 13 bits or fewer (a camera's raw data); "
                                     "it reads as nearly black: save it as 8-bit RGB, scaled to 0..255")
            if deep_colour:  # 14-bit camera data: PIL's top 8 of 16 bits are 0..63; scaled as an array of it would be
                used = int(rgb[..., :3].max(initial=0)).bit_length() + 8
                bits = next(b for b in CAMERA_BITS if b >= used)
                rgb = rgb.copy()
                rgb[..., :3] <<= 16 - bits
    if frames > 1:  # outside _decode_errors: a warning raised as an error (-W error) is not a damaged file
        warnings.warn(f"{path}: holds {frames} images (pages or frames); only the first is read", UserWarning,
                      stacklevel=2)
    return rgb


@contextlib.contextmanager
def _decode_errors(path: Path) -> Iterator[None]:
    """Whatever PIL raises while opening or decoding ``path`` as one :class:`ImageReadError` naming it."""
    try:
        yield
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path}: image is too large to decode safely ({exc}); downscale it first") from None
    except UnidentifiedImageError:
        with open(path, "rb") as f:
            tiff = f.read(4) in (b"II*\x00", b"MM\x00*")
        raise ImageReadError(
            f"{path}: a TIFF of a kind PIL cannot read (e.g. 32-bit float RGB); save it as an 8-bit or 16-bit "
            "RGB TIFF, PNG or JPEG" if tiff else
            f"{path}: not a readable image (expected PNG, JPEG, BMP, TIFF, GIF or WebP content)"
        ) from None
    except MemoryError:
        raise
    except PermissionError as exc:
        raise UnreadableFileError(f"{path}: cannot be read ({exc.strerror or exc}); check its permissions "
                                  "(the image itself may be intact)") from None
    except Exception as exc:  # PIL's decoders fail on damaged files with many kinds of error (TypeError, KeyError...)
        raise ImageReadError(f"{path}: the image is damaged or truncated ({exc or type(exc).__name__})") from None


def check_image_header(path: PathLike) -> None:
    """Raise :class:`ImageReadError` naming ``path`` when it is empty, unreadable or not an image
    PIL recognises; the pixels are not decoded (a damaged body shows when they are)."""
    path = Path(path)
    with _decode_errors(path):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ImageReadError(f"{path}: no such file; check the path") from None
        if size == 0:
            raise ImageReadError(f"{path}: the file is empty, expected an image (PNG, JPEG, ...)")
        with _named_pil_warnings(path), Image.open(path):
            pass


def _rawmode(tile) -> str:
    args = tile[3] if len(tile) > 3 else ""
    return str(args[0] if isinstance(args, tuple) and args else args)


def as_rgb_array(array: np.ndarray, name: str = "array") -> np.ndarray:
    """Validate one image array (H, W), (H, W, 1|3|4) and return it as uint8 (H, W, 3)."""
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ImageReadError(
            f"{name}: expected an image of shape (H, W, 3), (H, W, 1), (H, W, 4) or (H, W), got {arr.shape}"
        )
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] == 4:
        alpha = arr[..., 3:].astype(np.float32) / (255.0 if arr.dtype == np.uint8 else max(arr[..., 3].max(), 1))
        rgb = arr[..., :3] if arr.dtype == np.uint8 else _to_uint8(arr[..., :3], name)  # 16-bit to 8 first
        arr = rgb.astype(np.float32) * alpha + np.array(BACKGROUND, np.float32) * (1 - alpha)
    return _to_uint8(arr, name)


def _to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ImageReadError(f"{name}: expected numeric pixel values 0..255, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.integer) and arr.size and arr.max() == 1 and arr.min() >= 0:
        raise ImageReadError(f"{name}: integer pixel values are all 0 or 1, which looks like 0..1 images cast to "
                             f"{arr.dtype}; bloodcell expects 0..255: multiply by 255 before the cast")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return _high_bit_depth_to_uint8(arr)
    integer = np.issubdtype(arr.dtype, np.integer)
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ImageReadError(f"{name}: contains NaN or infinite pixel values; replace them (np.nan_to_num) or export the "
                             "image again")
    lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0))
    if lo < 0 or hi > 255:
        raise ImageReadError(f"{name}: pixel values must be in 0..255, got {lo:g}..{hi:g}")
    if 0 < hi <= FLOAT_01_LIMIT and not integer:
        # A float image whose brightest pixel is at most 2 is a 0..1 image (with some overshoot),
        # not a nearly black 0..255 one.
        raise ImageReadError(
            f"{name}: float pixel values are in 0..{hi:g}, which looks like the 0..1 convention, but bloodcell "
            "expects 0..255; multiply the images by 255"
        )
    return np.rint(arr).astype(np.uint8)


def resize_image(image: np.ndarray, size: int, name: str | None = None) -> np.ndarray:
    """Centre-crop a uint8 RGB image to a square and resize it to (size, size, 3) with Lanczos
    (``name``: what errors call the image, e.g. its path)."""
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ImageReadError(f"{name + ': ' if name else ''}image of {h}x{w} pixels: too small to show a cell; "
                             f"bloodcell needs at least {MIN_SIDE}x{MIN_SIDE} pixels")
    if h == size and w == size:
        return image
    if h != w:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        image = image[top : top + side, left : left + side]
    return np.asarray(Image.fromarray(image).resize((size, size), RESAMPLE))


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Apply :func:`resize_image` to a batch (N, H, W, 3); returns (N, size, size, 3) uint8."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, img in enumerate(images):
        out[i] = resize_image(img, size, f"images[{i}]")
    return out


def load_image(source: ImageLike, size: int, name: str | None = None) -> np.ndarray:
    """Read one image (path, PIL image or array) and return it resized to (size, size, 3) uint8."""
    if isinstance(source, np.ndarray) or _is_tensor(source):
        arr = as_rgb_array(np.asarray(source), name or "array")
    else:
        arr = read_image(source, name=name)
        name = str(source) if isinstance(source, (str, os.PathLike)) else name
    return resize_image(arr, size, name)


def load_images(images, size: int) -> np.ndarray:
    """Turn what users pass to a classifier into one uint8 batch (N, size, size, 3).

    Accepts a batch array (N, H, W, C), a single image array (H, W, C) or (H, W), a path, a PIL
    image, or a list of paths, PIL images or arrays.
    """
    if isinstance(images, np.ndarray) or _is_tensor(images):
        arr = np.asarray(images)
        if arr.ndim == 4:
            if arr.shape[-1] not in (1, 3, 4):
                hint = ("; it looks channels-first: np.transpose(images, (0, 2, 3, 1))" if arr.shape[1] in (1, 3, 4)
                        else "")
                raise ImageReadError(f"images: expected a batch of shape (N, H, W, 3), got {arr.shape}{hint}")
            if arr.shape[-1] == 3:
                if arr.dtype != np.uint8:  # bit depth and value range are judged per image, as in a list
                    arr = np.stack([_to_uint8(a, f"images[{i}]") for i, a in enumerate(arr)]) if len(arr) else \
                        _to_uint8(arr, "images")
                elif arr.size and arr.max() == 1:  # the whole batch 0..1: cast from floats without the * 255
                    _to_uint8(arr, "images")
                return resize_images(arr, size)
            return np.stack([resize_image(as_rgb_array(a, f"images[{i}]"), size, f"images[{i}]") for i, a in enumerate(arr)])
        if arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4) and arr.shape[1] == arr.shape[2] != arr.shape[0]:
            raise ImageReadError(f"images: shape {arr.shape} looks like a batch of {arr.shape[0]} greyscale images; add "
                                 "a channel axis: images[..., None]" + (
                                     "; or, for one channels-first image, np.transpose(image, (1, 2, 0))"
                                     if arr.shape[0] in (1, 3, 4) else ""))
        if arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4) and arr.shape[0] not in (1, 3, 4):
            raise ImageReadError(f"images: shape {arr.shape} is neither an image (H, W, 3) nor a batch (N, H, W, 3); "
                                 "for a batch of greyscale images add a channel axis: images[..., None]")
        return load_image(arr, size, "image")[None]
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return load_image(images, size)[None]
    if hasattr(images, "read"):
        raise ImageReadError("images: got an open file; pass its path, or the image PIL opens from it (Image.open(f))")
    if isinstance(images, (dict, set, bytes)):
        raise ImageReadError(f"images: expected an array, a path, a PIL image or a list of them, got a "
                             f"{type(images).__name__}")
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], (list, tuple, int, float)):
        try:  # nested lists of numbers: an image or a batch written as lists
            arr = np.asarray(images)
        except ValueError:
            raise ImageReadError("images: nested lists of uneven lengths; give an array (N, H, W, 3)") from None
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            raise ImageReadError("images: nested lists that are not numbers; give an array (N, H, W, 3)")
        return load_images(arr, size)
    if isinstance(images, Iterable):
        items = list(images)
        if not items:
            raise ImageReadError("images: got an empty list, expected at least one image")
        return np.stack([load_image(x, size, f"images[{i}]") for i, x in enumerate(items)])
    raise ImageReadError(
        f"images: expected an array, a path, a PIL image or a list of them, got {type(images).__name__}"
    )


def _is_tensor(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and hasattr(x, "numpy")


def is_image_file(path: Path, root: Path) -> bool:
    """Whether ``path`` (found under folder ``root``) is an image file to read: an image suffix, and
    neither it nor a folder between it and ``root`` hidden (macOS's ``._name.jpg`` resource files,
    ``.ipynb_checkpoints``). A broken link with an image suffix counts: reading it says what is wrong."""
    return ((path.is_file() or path.is_symlink()) and path.suffix.lower() in IMAGE_EXTENSIONS
            and not any(part.startswith(".") for part in path.relative_to(root).parts))


def _files_under(folder: Path) -> Iterator[Path]:
    """Every file under ``folder`` but in hidden folders, following linked folders (each real folder
    visited once, so a link loop ends; a link up to a folder holding ``folder`` is not followed, as
    it would bring in the files beside it). A folder that cannot be listed raises
    :class:`ImageReadError`: its images would be left out unseen."""
    def refuse(error: OSError):
        raise ImageReadError(f"{error.filename}: cannot be listed ({error.strerror or error}); check its permissions, "
                             "or move it out of the data")

    top = os.path.realpath(folder)
    seen = set()
    for here, dirs, names in os.walk(folder, followlinks=True, onerror=refuse):
        real = os.path.realpath(here)
        if real in seen or (real != top and top.startswith(real.rstrip(os.sep) + os.sep)):
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        yield from (Path(here) / n for n in names)


def image_files_under(folder: Path, *, recursive: bool = True) -> list[Path]:
    """The image files (:func:`is_image_file`) under ``folder``, sorted, following linked folders
    (each real folder visited once, so a link loop ends)."""
    folder = Path(folder)
    if not recursive:
        return sorted(f for f in folder.iterdir() if is_image_file(f, folder))
    return sorted(f for f in _files_under(folder) if is_image_file(f, folder))


def other_files_under(folder: Path) -> list[Path]:
    """The files under ``folder`` that :func:`image_files_under` leaves out (notes, manifests,
    licences), hidden ones aside, sorted."""
    folder = Path(folder)
    return sorted(f for f in _files_under(folder) if not f.name.startswith(".") and not is_image_file(f, folder))


def check_not_empty(path: PathLike, what: str = "an image file or folder") -> None:
    """Refuse an empty path, which ``Path`` would read as the working directory (an unset shell variable, say)."""
    if isinstance(path, str) and not path.strip():
        raise DataError(f"{path!r}: an empty path (an unset variable?); give {what}")


def find_image_files(paths: Sequence[PathLike], *, recursive: bool = True) -> list[Path]:
    """Expand files and folders into a sorted list of image files.

    A missing path raises :class:`ImageReadError`, a folder without images (hidden files aside)
    :class:`DataError`. Files given explicitly are kept whatever their extension (reading them
    reports what is wrong).
    """
    out: list[Path] = []
    for given in paths:
        check_not_empty(given)
        p = Path(given)
        if not p.exists():
            raise ImageReadError(f"{p}: no such file or folder; check the path")
        if p.is_dir():
            found = image_files_under(p, recursive=recursive)
            if not found:
                raise DataError(f"{p}: folder holds no images (looked for {', '.join(IMAGE_EXTENSIONS)}); "
                                "give a folder of images")
            out.extend(found)
        else:
            out.append(p)
    return out
