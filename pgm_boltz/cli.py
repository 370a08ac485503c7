"""The ``pgm-boltz`` command.

``pgm-boltz demo``  the main job: train a model and show the results.
``pgm-boltz seed``  the seed example: two spins, Hebbian vs exact maximum likelihood.
``pgm-boltz plan GRAPH.graphml``  print the compiler's plan for a declared graph file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _seed(args: argparse.Namespace) -> int:
    from .examples_seed import run

    run(epochs=args.epochs)
    return 0


def _plan(args: argparse.Namespace) -> int:
    import networkx as nx

    from . import compile as compile_model
    from .errors import PgmBoltzError

    try:
        G = nx.read_graphml(args.graph)
        model = compile_model(G, engine=args.engine)
    except (OSError, PgmBoltzError) as err:
        print(f"pgm-boltz plan: {err}", file=sys.stderr)
        return 2
    print(model.plan)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pgm-boltz`` command."""
    parser = argparse.ArgumentParser(prog="pgm-boltz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the main job: train a model and show the results")
    p.add_argument("--out", default="pgm_boltz_demo", help="folder for the figures")
    p.add_argument("--epochs", type=int, default=None, help="training epochs")
    p.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    p.set_defaults(func=_demo)
    p = sub.add_parser("seed", help="the seed example (two spins)")
    p.add_argument("--epochs", type=int, default=500)
    p.set_defaults(func=_seed)
    p = sub.add_parser("plan", help="print the compiler's plan for a GraphML file")
    p.add_argument("graph")
    p.add_argument("--engine", default="auto")
    p.set_defaults(func=_plan)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(out=args.out, epochs=args.epochs, quick=args.quick)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pgm-boltz`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
