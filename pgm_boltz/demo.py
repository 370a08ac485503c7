"""The main job behind ``pgm-boltz demo``."""

from __future__ import annotations

__all__ = ["run_demo"]


def run_demo(out: str = "pgm_boltz_demo", epochs: int | None = None,
             quick: bool = False) -> int:
    """Train the seed model exactly and print the table (the digits RBM comes with the
    block-Gibbs engine)."""
    from .examples_seed import run

    run(epochs=epochs or (100 if quick else 500))
    return 0
