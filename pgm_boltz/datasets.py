"""Small data sets from installed packages (no downloads).

:func:`load_digits` gives scikit-learn's bundled 8×8 digits with the project's standard
split: rows shuffled with ``numpy.random.default_rng(0)``, the first 1497 for training,
the last 300 for testing.

:func:`colour_tiles` cuts square RGB tiles from the colour photographs that scikit-image,
scikit-learn and matplotlib ship inside their wheels, quantised to K levels per channel,
with a train/test split by image region (the right part of every photograph is test).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import DataError

__all__ = ["COLOUR_PHOTOS", "DEFAULT_COLOUR_PHOTOS", "ColourTiles", "colour_tiles",
           "load_digits", "tile"]


def load_digits(levels: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The digits as ``(train, test)`` arrays of codes, shapes (1497, 64) and (300, 64).

    ``levels=17`` keeps the 17 intensity levels 0..16; ``levels=2`` binarises them
    (``pixel >= 8`` → 1); other ``K`` rescale ``round(pixel * (K-1) / 16)``.
    Needs scikit-learn (``pip install pgm-boltz[examples]``).

    >>> train, test = load_digits()
    >>> train.shape, test.shape, sorted(set(train.ravel().tolist()))
    ((1497, 64), (300, 64), [0.0, 1.0])
    """
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise DataError(f"levels must be an integer >= 2, got {levels!r}")
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError:  # pragma: no cover - depends on the environment
        raise DataError("load_digits needs scikit-learn: pip install 'pgm-boltz[examples]'"
                        ) from None
    X = _sk_digits().data.astype(np.float64)
    rows = np.random.default_rng(0).permutation(len(X))
    X = X[rows]
    if levels == 2:
        X = (X >= 8).astype(np.float64)
    elif levels != 17:
        X = np.round(X * (levels - 1) / 16.0)
    return X[:1497].copy(), X[-300:].copy()


def tile(images: np.ndarray, shape: tuple[int, ...], cols: int = 10, pad: int = 1,
         fill: float = np.nan) -> np.ndarray:
    """Lay images out on a grid for ``imshow``: image ``i`` (reshaped to ``shape``, e.g.
    ``(8, 8)`` or ``(8, 8, 3)``) goes to row ``i // cols``, column ``i % cols``, with
    ``pad`` pixels of ``fill`` around and between them.

    The canvas is ``(rows (h + pad) + pad, cols (w + pad) + pad, *shape[2:])`` with
    ``rows = ceil(n / cols)``.

    >>> t = tile(np.arange(8.0), (2, 2), cols=2, fill=0)
    >>> t.shape, t[1:3, 4:6].tolist()
    ((4, 7), [[4.0, 5.0], [6.0, 7.0]])
    """
    x = np.asarray(images, dtype=np.float64).reshape(-1, *shape)
    h, w = shape[:2]
    rows = -(-len(x) // cols)
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, *shape[2:]), fill,
                     dtype=np.float64)
    for i, im in enumerate(x):
        r, c = divmod(i, cols)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h,
               pad + c * (w + pad):pad + c * (w + pad) + w] = im
    return canvas


# --------------------------------------------------------------------------------------
# Colour tiles from the photographs that installed packages ship
# --------------------------------------------------------------------------------------

#: Named photographs :func:`colour_tiles` can load, and the package shipping each. Every
#: one is a file inside the installed wheel (no download): scikit-image's ``skimage/data``
#: folder, scikit-learn's ``sklearn/datasets/images`` and matplotlib's ``sample_data``.
COLOUR_PHOTOS: dict[str, str] = {
    "astronaut": "scikit-image",        # 512 × 512
    "chelsea": "scikit-image",          # 300 × 451, a cat
    "coffee": "scikit-image",           # 400 × 600
    "rocket": "scikit-image",           # 427 × 640
    "hubble_deep_field": "scikit-image",  # 872 × 1000
    "immunohistochemistry": "scikit-image",  # 512 × 512
    "motorcycle": "scikit-image",       # 500 × 741, left view of stereo_motorcycle
    "china": "scikit-learn",            # 427 × 640
    "flower": "scikit-learn",           # 427 × 640
    "grace_hopper": "matplotlib",       # 600 × 512, a face
}

#: The photographs used when ``images=None`` (scikit-image's, else scikit-learn's).
DEFAULT_COLOUR_PHOTOS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket")
_FALLBACK_COLOUR_PHOTOS: tuple[str, ...] = ("china", "flower")

_PIP_NAME = {"scikit-image": "scikit-image", "scikit-learn": "scikit-learn",
             "matplotlib": "matplotlib"}


@dataclass(frozen=True)
class ColourTiles:
    """Square colour tiles cut from photographs, as rows of integer codes.

    ``train`` and ``test`` have shape ``(N, size * size * 3)`` with codes ``0..levels-1``.
    Columns are **channel-last** (pixel-major, RGB innermost), the order of
    ``x.reshape(N, size, size, 3)``: column ``(r * size + c) * 3 + ch`` holds channel
    ``ch`` of the pixel in row ``r``, column ``c`` of the tile. A model built with
    ``pb.graphs.rbm(size * size * 3, ...)`` takes these columns as its visible nodes in
    that order.

    A pixel value ``p`` in 0..255 has code ``k = floor(p * levels / 256)``, i.e. bin
    ``[256 k / levels, 256 (k + 1) / levels)``; :meth:`to_images` maps code ``k`` back
    to the bin centre ``(k + 1/2) / levels`` in [0, 1].

    ``train_origin`` / ``test_origin`` (shape ``(N, 3)``) give each row's source:
    ``(image index into names, top row, left column)`` in the image after
    ``downsample``. ``split_columns[i]`` is the column of image ``i`` where the test
    region starts: every training tile lies left of it, every test tile right of it, so
    no pixel is in both sets.
    """

    train: np.ndarray
    test: np.ndarray
    size: int
    levels: int
    names: tuple[str, ...]
    train_origin: np.ndarray
    test_origin: np.ndarray
    split_columns: tuple[int, ...]
    image_shapes: tuple[tuple[int, int], ...]
    downsample: int = 1
    layout: str = "channel-last"

    @property
    def n_visible(self) -> int:
        """Columns per row, ``size * size * 3``."""
        return self.size * self.size * 3

    def to_images(self, codes: np.ndarray) -> np.ndarray:
        """Rows of codes (integers, or fractional codes such as a model's means) as
        images in [0, 1], shape ``(N, size, size, 3)``: ``(k + 1/2) / levels``, clipped.

        >>> t = ColourTiles(np.zeros((1, 12), int), np.zeros((0, 12), int), 2, 4, ("x",),
        ...                 np.zeros((1, 3), int), np.zeros((0, 3), int), (2,), ((2, 4),))
        >>> t.to_images(np.array([[0, 1, 2, 3] * 3]))[0, 0].tolist()
        [[0.125, 0.375, 0.625], [0.875, 0.125, 0.375]]
        """
        x = np.asarray(codes, dtype=np.float64).reshape(-1, self.size, self.size, 3)
        return np.clip((x + 0.5) / self.levels, 0.0, 1.0)

    def codes_from_values(self, values: np.ndarray) -> np.ndarray:
        """A multinary model's values ``k / (levels - 1)`` (e.g. conditional means
        ``E[v | h]``) as fractional codes ``v * (levels - 1)``, to compare with the data
        or to pass to :meth:`to_images`.

        >>> t = ColourTiles(np.zeros((1, 3), int), np.zeros((0, 3), int), 1, 5, ("x",),
        ...                 np.zeros((1, 3), int), np.zeros((0, 3), int), (1,), ((1, 2),))
        >>> t.codes_from_values(np.array([0.0, 0.5, 1.0])).tolist()
        [0.0, 2.0, 4.0]
        """
        return np.asarray(values, dtype=np.float64) * (self.levels - 1)

    def grid(self, codes: np.ndarray, cols: int = 8, pad: int = 1) -> np.ndarray:
        """Rows of codes laid out on a white-padded grid for ``imshow`` (see :func:`tile`),
        shape ``(rows (size + pad) + pad, cols (size + pad) + pad, 3)``, values in [0, 1].

        >>> t = ColourTiles(np.zeros((3, 12), int), np.zeros((0, 12), int), 2, 4, ("x",),
        ...                 np.zeros((3, 3), int), np.zeros((0, 3), int), (2,), ((2, 4),))
        >>> t.grid(t.train, cols=2).shape
        (7, 7, 3)
        """
        return tile(self.to_images(codes), (self.size, self.size, 3), cols=cols, pad=pad,
                    fill=1.0)


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo \
            or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise DataError(f"{name} must be an integer {bound}, got {value!r}")
    return int(value)


def _load_photo(name: str) -> np.ndarray:
    """One named photograph as a uint8 array (H, W, 3); DataError if its package is
    missing."""
    if name not in COLOUR_PHOTOS:
        raise DataError(f"unknown photograph {name!r}; choose from "
                        f"{', '.join(sorted(COLOUR_PHOTOS))}, or pass (H, W, 3) arrays")
    package = COLOUR_PHOTOS[name]
    try:
        if package == "scikit-image":
            import skimage.data as skd

            img = skd.stereo_motorcycle()[0] if name == "motorcycle" else \
                getattr(skd, name)()
        elif package == "scikit-learn":
            from sklearn.datasets import load_sample_image

            img = load_sample_image(f"{name}.jpg")
        else:
            import matplotlib.cbook as cbook
            import matplotlib.image as mpimg

            with cbook.get_sample_data("grace_hopper.jpg") as f:
                img = mpimg.imread(f, format="jpg")
    except ImportError:
        raise DataError(f"the photograph {name!r} ships with {package}, which is not "
                        f"installed: pip install {_PIP_NAME[package]}") from None
    return np.asarray(img)


def _default_photos() -> tuple[str, ...]:
    """scikit-image's photographs, else scikit-learn's (with a warning), else an error."""
    try:
        import skimage.data  # noqa: F401
        return DEFAULT_COLOUR_PHOTOS
    except ImportError:
        pass
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        raise DataError("colour_tiles needs photographs from scikit-image or scikit-learn, "
                        "and neither is installed: pip install scikit-image (or pip "
                        "install scikit-learn)") from None
    warnings.warn("scikit-image is not installed (pip install scikit-image); colour_tiles "
                  "falls back to scikit-learn's photographs " +
                  ", ".join(_FALLBACK_COLOUR_PHOTOS), stacklevel=3)
    return _FALLBACK_COLOUR_PHOTOS


def _as_rgb_pixels(img: np.ndarray, label: str) -> np.ndarray:
    """An image as float64 pixel values in [0, 255], shape (H, W, 3)."""
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] != 3:
        raise DataError(f"image {label} must have shape (H, W, 3) (RGB), got {a.shape}")
    if a.dtype.kind in "ui":
        if a.size and (a.min() < 0 or a.max() > 255):
            raise DataError(f"image {label} has integer pixels outside 0..255")
        return a.astype(np.float64)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or (a.size and (a.min() < 0 or a.max() > 1)):
            raise DataError(f"image {label} has float pixels outside [0, 1] (or NaN); "
                            "pass uint8 0..255 or floats in [0, 1]")
        return np.minimum(np.floor(a * 256.0), 255.0)
    raise DataError(f"image {label} has dtype {a.dtype}; pass uint8 0..255 or floats in "
                    "[0, 1]")


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Average over f × f pixel blocks (the image cropped to a multiple of f)."""
    if f == 1:
        return a
    h, w = (a.shape[0] // f) * f, (a.shape[1] // f) * f
    return a[:h, :w].reshape(h // f, f, w // f, f, 3).mean(axis=(1, 3))


def colour_tiles(size: int = 32, levels: int = 16, stride: int | None = None,
                 images: Sequence[str | np.ndarray] | None = None,
                 test_fraction: float = 0.25, downsample: int = 1, seed: int = 0,
                 dtype: type | np.dtype = np.int64) -> ColourTiles:
    """Square RGB tiles cut from colour photographs, quantised to ``levels`` codes per
    channel, split into train and test **by image region**.

    Each image (after averaging ``downsample × downsample`` pixel blocks) is split at
    column ``s = W - round(test_fraction * W)``: training tiles are cut from columns
    ``[0, s)``, test tiles from ``[s, W)``, on a grid of step ``stride`` (default
    ``size // 2``; tiles of one set overlap each other when ``stride < size``, never
    tiles of the other set). A pixel ``p`` becomes code ``floor(p * levels / 256)``.
    Rows are in channel-last order (see :class:`ColourTiles`); the rows of each set are
    shuffled with ``numpy.random.default_rng(seed)`` (the *set* of tiles does not depend
    on the seed, only their order, so ``train[:n]`` is a random subset).

    ``images``: names from :data:`COLOUR_PHOTOS` (files inside the installed
    scikit-image, scikit-learn and matplotlib wheels; nothing is downloaded) and/or
    arrays ``(H, W, 3)`` (uint8 0..255, or floats in [0, 1]). The default is
    scikit-image's astronaut, chelsea, coffee and rocket; without scikit-image it falls
    back, with a warning, to scikit-learn's china and flower.

    Returns a :class:`ColourTiles` with ``train``, ``test`` (codes of ``dtype``), the
    tiles' origins and the metadata to turn rows back into images.

    >>> rng = np.random.default_rng(0)
    >>> img = rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)
    >>> d = colour_tiles(size=4, levels=4, stride=4, images=[img], test_fraction=0.5)
    >>> d.train.shape, d.test.shape, int(d.train.max()) <= 3
    ((4, 48), (4, 48), True)
    >>> d.split_columns, sorted(d.train_origin[:, 2].tolist()), sorted(d.test_origin[:, 2].tolist())
    ((8,), [0, 0, 4, 4], [8, 8, 12, 12])
    """
    size = _check_int("size", size, 1)
    levels = _check_int("levels", levels, 2, 256)
    stride = _check_int("stride", max(1, size // 2) if stride is None else stride, 1)
    downsample = _check_int("downsample", downsample, 1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DataError(f"seed must be an integer, got {seed!r}")
    if not isinstance(test_fraction, (int, float, np.floating)) or \
            isinstance(test_fraction, bool) or not 0.0 < float(test_fraction) < 1.0:
        raise DataError(f"test_fraction must be a number strictly between 0 and 1, got "
                        f"{test_fraction!r}")
    dt = np.dtype(dtype)
    if dt.kind not in "ui" or np.iinfo(dt).max < levels - 1:
        raise DataError(f"dtype must be an integer type holding 0..{levels - 1}, got {dt}")
    if images is None:
        images = _default_photos()
    if isinstance(images, (str, np.ndarray)):
        images = [images]
    images = list(images)
    if not images:
        raise DataError("images is empty; pass photograph names or (H, W, 3) arrays")

    names: list[str] = []
    shapes: list[tuple[int, int]] = []
    splits: list[int] = []
    parts: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    origins: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for i, item in enumerate(images):
        if isinstance(item, str):
            label, pixels = item, _as_rgb_pixels(_load_photo(item), repr(item))
        else:
            label, pixels = f"array{i}", _as_rgb_pixels(item, f"#{i}")
        pixels = _block_mean(pixels, downsample)
        codes = np.floor(pixels * levels / 256.0).astype(dt)
        h, w = codes.shape[:2]
        split = w - round(float(test_fraction) * w)
        if h < size or split < size or w - split < size:
            raise DataError(
                f"image {label} is {h} × {w} after downsample={downsample}: its train "
                f"part (columns 0..{split - 1}) and test part (columns {split}..{w - 1}) "
                f"must each hold a {size} × {size} tile; use a smaller size, downsample "
                f"or a test_fraction nearer 0.5")
        names.append(label)
        shapes.append((h, w))
        splits.append(split)
        rows = np.arange(0, h - size + 1, stride)
        # (h - size + 1, w - size + 1, 3, size, size): every window, a view
        win = np.lib.stride_tricks.sliding_window_view(codes, (size, size), axis=(0, 1))
        for part, c0, c1 in (("train", 0, split), ("test", split, w)):
            cols = np.arange(c0, c1 - size + 1, stride)
            rr, cc = np.meshgrid(rows, cols, indexing="ij")
            rr, cc = rr.ravel(), cc.ravel()
            # the chosen windows as (n, size, size, 3), flattened channel-last
            parts[part].append(win[rr, cc].transpose(0, 2, 3, 1).reshape(len(rr), -1))
            origins[part].append(np.stack([np.full(len(rr), i), rr, cc], axis=1))

    rng = np.random.default_rng(int(seed))
    out = {}
    for part in ("train", "test"):
        x = np.concatenate(parts[part]).astype(dt, copy=False)
        o = np.concatenate(origins[part]).astype(np.int64)
        perm = rng.permutation(len(x))
        out[part], out[part + "_origin"] = np.ascontiguousarray(x[perm]), o[perm]
    return ColourTiles(train=out["train"], test=out["test"], size=size, levels=levels,
                       names=tuple(names), train_origin=out["train_origin"],
                       test_origin=out["test_origin"], split_columns=tuple(splits),
                       image_shapes=tuple(shapes), downsample=downsample)
