"""Argument checks, random generators and progress bars: written once, used everywhere.

Every public call validates its arguments at the door with these helpers, so a bad
argument gets an :class:`~pgm_boltz.errors.ArgumentError` naming the argument, the value
and what it takes, never a crash deep inside torch. Counts given as numpy integers are
accepted; booleans are never taken for numbers.

>>> check_int("steps", np.int64(5), minimum=1)
5
>>> check_choice("method", "pcd", ("cd", "pcd"))
'pcd'
"""

from __future__ import annotations

import math
import numbers
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from .errors import ArgumentError, DataError

__all__ = [
    "check_bool",
    "check_call",
    "check_choice",
    "check_device",
    "check_dtype",
    "check_int",
    "check_kwargs",
    "check_number",
    "check_seed",
    "make_generator",
    "progress_bar",
    "stack_columns",
]

#: Seeds are non-negative integers below 2**63 (what ``torch.Generator.manual_seed`` takes).
MAX_SEED = 2**63 - 1
#: Set ``PGM_BOLTZ_PROGRESS=0`` to silence every progress bar, ``=1`` to force them.
PROGRESS_ENV = "PGM_BOLTZ_PROGRESS"


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None,
              *, allow_none: bool = False, where: str = "") -> Any:
    """``value`` as a Python int, checked to be an integer (numpy integers included, bools
    and floats refused) within ``[minimum, maximum]``; ``None`` passes when allowed.

    >>> check_int("n", 3, minimum=1)
    3
    >>> check_int("n", 0, minimum=1)
    Traceback (most recent call last):
    ...
    pgm_boltz.errors.ArgumentError: n must be an integer >= 1, got 0
    """
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if ok:
        value = int(value)
        ok = (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not ok:
        rng = []
        if minimum is not None:
            rng.append(f">= {minimum}")
        if maximum is not None:
            rng.append(f"<= {maximum}")
        what = "an integer" + (" " + " and ".join(rng) if rng else "")
        if allow_none:
            what += " or None"
        raise ArgumentError(f"{_prefix(where)}{name} must be {what}, got {value!r}")
    return value


def check_number(name: str, value: Any, minimum: float | None = None, *,
                 strict: bool = False, maximum: float | None = None,
                 allow_none: bool = False, where: str = "") -> Any:
    """``value`` as a finite Python float (ints, numpy scalars and 0-d tensors accepted),
    checked against ``minimum`` (``strict``: ``>``) and ``maximum``.

    >>> check_number("lr", 0.1, minimum=0.0, strict=True)
    0.1
    >>> check_number("lr", float("nan"), minimum=0.0)
    Traceback (most recent call last):
    ...
    pgm_boltz.errors.ArgumentError: lr must be a finite number >= 0.0, got nan
    """
    if value is None and allow_none:
        return None
    if torch.is_tensor(value) and value.numel() == 1:
        value = value.item()
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if ok:
        value = float(value)
        ok = math.isfinite(value)
        if ok and minimum is not None:
            ok = value > minimum if strict else value >= minimum
        if ok and maximum is not None:
            ok = value <= maximum
    if not ok:
        rng = []
        if minimum is not None:
            rng.append(f"{'>' if strict else '>='} {minimum}")
        if maximum is not None:
            rng.append(f"<= {maximum}")
        what = "a finite number" + (" " + " and ".join(rng) if rng else "")
        raise ArgumentError(f"{_prefix(where)}{name} must be {what}, got {value!r}")
    return value


def check_bool(name: str, value: Any, *, where: str = "") -> bool:
    """``value`` checked to be ``True`` or ``False`` (numpy bools accepted).

    >>> check_bool("progress", np.bool_(True))
    True
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentError(f"{_prefix(where)}{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Iterable[Any], *, where: str = "") -> Any:
    """``value`` checked to be one of ``choices``.

    >>> check_choice("storage", "dense", ("auto", "dense", "sparse"))
    'dense'
    """
    choices = tuple(choices)
    try:
        ok = value in choices
    except TypeError:  # unhashable or incomparable values
        ok = False
    if not ok:
        raise ArgumentError(f"{_prefix(where)}unknown {name} {value!r}; use one of "
                            f"{', '.join(repr(c) for c in choices)}")
    return value


def check_seed(seed: Any, *, where: str = "") -> int | None:
    """A seed: ``None`` or an integer in ``0..2**63-1`` (numpy integers accepted).

    >>> check_seed(np.uint32(7)), check_seed(None)
    (7, None)
    """
    return check_int("seed", seed, 0, MAX_SEED, allow_none=True, where=where)


def check_kwargs(where: str, kwargs: Mapping[str, Any], allowed: Iterable[str] = ()) -> None:
    """Refuse unknown keyword arguments (never ignore them), naming the allowed ones.

    >>> check_kwargs("sample(method='exact')", {})
    >>> check_kwargs("sample", {"step": 10}, ("steps",))
    Traceback (most recent call last):
    ...
    pgm_boltz.errors.ArgumentError: sample got unexpected argument(s) ['step']; it takes steps
    """
    allowed = tuple(allowed)
    extra = sorted(k for k in kwargs if k not in allowed)
    if extra:
        takes = f"it takes {', '.join(allowed)}" if allowed else "it takes none"
        raise ArgumentError(f"{where} got unexpected argument(s) {extra}; {takes}")


def check_call(func: Any, kwargs: Mapping[str, Any], where: str,
               skip: Iterable[str] = ()) -> None:
    """Refuse keyword arguments that ``func`` does not take (read off its signature;
    ``skip`` names parameters the caller fills itself), naming the ones it does.

    >>> def f(model, steps=1, seed=None): ...
    >>> check_call(f, {"steps": 2}, "sample", skip=("model",))
    >>> check_call(f, {"step": 2}, "sample", skip=("model",))
    Traceback (most recent call last):
    ...
    pgm_boltz.errors.ArgumentError: sample got unexpected argument(s) ['step']; it takes steps, seed
    """
    import inspect

    params = inspect.signature(func).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    skip = set(skip)
    names = [n for n, p in params.items() if n not in skip and p.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    check_kwargs(where, kwargs, names)


def check_device(device: Any, *, where: str = "") -> torch.device:
    """``device`` (None, a string such as ``"cpu"`` / ``"cuda:0"``, or a
    ``torch.device``) as a ``torch.device`` that this machine has (``None``: the CPU);
    ArgumentError naming what is wrong otherwise.

    >>> check_device(None)
    device(type='cpu')
    """
    p = _prefix(where)
    if device is None:
        return torch.device("cpu")
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except (RuntimeError, ValueError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ArgumentError(f"{p}device={device!r} is not a device torch knows "
                                f"({first}); use 'cpu' or 'cuda'") from None
    else:
        raise ArgumentError(f"{p}device must be None, a str such as 'cpu' or 'cuda', or a "
                            f"torch.device, got {type(device).__name__} {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ArgumentError(f"{p}device={str(dev)!r} was asked for but torch sees no "
                                "CUDA device; use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ArgumentError(f"{p}device={str(dev)!r} does not exist; torch sees "
                                f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ArgumentError(f"{p}device={str(dev)!r} was asked for but torch sees no "
                                "MPS device; use device='cpu'")
    elif dev.type != "cpu":
        raise ArgumentError(f"{p}device type {dev.type!r} is not supported; use 'cpu' or "
                            "'cuda'")
    return dev


_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_dtype(dtype: Any, *, where: str = "") -> torch.dtype:
    """A floating torch dtype (``None``: torch's default dtype); names such as
    ``"float64"`` are accepted.

    >>> check_dtype("float64")
    torch.float64
    """
    if dtype is None:
        return torch.get_default_dtype()
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.replace("torch.", ""), dtype)
    if dtype not in (torch.float32, torch.float64):
        if dtype in _FLOAT_DTYPES:
            raise ArgumentError(f"{_prefix(where)}dtype {dtype} is too coarse for the "
                                "parameters; use torch.float32 or torch.float64")
        raise ArgumentError(f"{_prefix(where)}dtype must be torch.float32 or torch.float64, "
                            f"got {dtype!r}")
    return dtype


def make_generator(seed: int | None, device: torch.device | str | None = None
                   ) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (a fresh random seed when
    ``None``): the one place where the package makes its random streams.

    >>> g1, g2 = make_generator(3), make_generator(3)
    >>> bool(torch.rand(2, generator=g1).equal(torch.rand(2, generator=g2)))
    True
    """
    seed = check_seed(seed)
    gen = torch.Generator(device=torch.device("cpu") if device is None else device)
    gen.manual_seed(int(torch.seed() % MAX_SEED) if seed is None else seed)
    return gen


class _NullBar:
    """The do-nothing bar used when progress is off."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NullBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool = True, *, leave: bool = False,
                 unit: str = "it") -> Any:
    """A tqdm progress bar over ``total`` steps, or a silent stand-in.

    Bars are off when ``enabled`` is false, when the environment variable
    ``PGM_BOLTZ_PROGRESS=0``, and when standard error is not a terminal (logs, CI,
    pipes); ``PGM_BOLTZ_PROGRESS=1`` forces them on. They refresh at most twice a second,
    and the rate and the time left leave out the first step, which often holds one-off
    work (kernel compilation).

    >>> bar = progress_bar(10, "work", enabled=False)
    >>> bar.update(3); bar.n
    3
    """
    env = os.environ.get(PROGRESS_ENV)
    if not enabled or env == "0":
        return _NullBar()
    if env != "1":
        stream = sys.stderr
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        if not tty and "ipykernel" not in sys.modules:
            return _NullBar()
    from tqdm.auto import tqdm

    return _FirstStepExcluded(tqdm(total=total, desc=desc, leave=leave, unit=unit,
                                   mininterval=0.5, smoothing=0.1))


class _FirstStepExcluded:
    """A tqdm bar whose rate (and time left) leaves out the first step, which often
    holds one-off work such as compiling kernels: after the first update the bar's clock
    and counters restart from there."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._first = True

    @property
    def n(self) -> int:
        return self._bar.n

    def update(self, n: int = 1) -> None:
        self._bar.update(n)
        if self._first:
            self._first = False
            try:
                bar = self._bar
                now = bar._time()
                bar.initial, bar.start_t = bar.n, now
                bar.last_print_n, bar.last_print_t = bar.n, now
                bar._ema_dn, bar._ema_dt = type(bar._ema_dn)(bar.smoothing), \
                    type(bar._ema_dt)(bar.smoothing)
            except AttributeError:  # another tqdm: keep its own estimate
                pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        self._bar.set_postfix(*args, **kwargs)

    def close(self) -> None:
        self._bar.close()


def stack_columns(names: Iterable[Any], column: Any, what: str) -> np.ndarray:
    """The columns ``column(name)`` (arrays, sequences or torch tensors) for each of
    ``names`` as one float64 array (rows, columns); ``DataError`` naming the column when
    one is not numeric, and when they are not 1-D of one length (or there are none).

    >>> stack_columns(["a", "b"], {"a": [1, 2], "b": [3, 4]}.__getitem__, "data").tolist()
    [[1.0, 3.0], [2.0, 4.0]]
    """
    cols = []
    for name in names:
        c = column(name)
        c = c.detach().cpu().double().numpy() if torch.is_tensor(c) else c
        try:
            cols.append(np.asarray(c, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise DataError(f"{what} column {name!r} is not numeric: {err}") from None
    shapes = {c.shape for c in cols}
    if any(c.ndim != 1 for c in cols) or len(shapes) != 1:
        raise DataError(f"{what} columns must be 1-D and of equal length, got shapes "
                        f"{sorted(shapes)}")
    return np.stack(cols, axis=1)
