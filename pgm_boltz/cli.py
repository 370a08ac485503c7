"""The ``pgm-boltz`` command.

``pgm-boltz demo``  the main job: train a model and show the results.
``pgm-boltz seed``  the seed example: two spins, Hebbian vs exact maximum likelihood.
``pgm-boltz plan GRAPH.graphml``  print the compiler's plan for a declared graph file.
``pgm-boltz --version``  print the version.

Exit status: 0 on success; 2 when the command line or an input file is wrong (a bad
option value, a graph file that is missing, unreadable or does not compile); 1 when the
work itself fails (training diverged, an output file cannot be written, an optional
package is missing); 130 when interrupted. Errors are one line on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "build_parser", "main"]

#: Exit status when the work fails (diverged, cannot write, missing optional package).
EXIT_FAILURE = 1
#: Exit status when the command line or an input file is wrong (argparse's own code).
EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130

# the engines pb.compile accepts; pb.compile checks them again
_ENGINES = ("auto", "exact", "block-gibbs", "chromatic-gibbs")

_DESCRIPTION = """\
Graph-first Boltzmann machines: train the digits demo, run the two-spin seed
example, or print the compiler's plan for a graph file. Run
'pgm-boltz COMMAND --help' for the options of a command."""
_EPILOG = """\
exit status:
  0    success
  1    the work failed (training diverged, an output file cannot be written,
       an optional package is missing)
  2    the command line or an input file is wrong
  130  interrupted

examples:
  pgm-boltz demo --quick --out demo_figures
  pgm-boltz seed --epochs 200
  pgm-boltz plan my_graph.graphml --engine block-gibbs
"""


class _UsageError(Exception):
    """A problem with the command line found after parsing (exit status 2)."""


def _positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _out_folder(text: str) -> str:
    """argparse type: a folder to write into (made if missing), not an existing file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a folder name")
    path = os.path.expanduser(text)
    if os.path.exists(path) and not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text!r} exists and is not a folder")
    return path


def _graph_file(text: str) -> str:
    """argparse type: an existing regular file."""
    path = os.path.expanduser(text)
    if not os.path.exists(path):
        raise argparse.ArgumentTypeError(f"no such file {text!r}")
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a GraphML file")
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular file")
    return path


def _os_message(err: OSError) -> str:
    """An OSError as one line: what failed, and on which file."""
    what = err.strerror or str(err) or type(err).__name__
    if err.filename is not None:
        return f"{what}: {os.fsdecode(err.filename)!r}"
    return what


# ------------------------------------------------------------------ subcommands


def _seed(args: argparse.Namespace) -> int:
    from .examples_seed import run

    run(epochs=args.epochs)
    return 0


def _plan(args: argparse.Namespace) -> int:
    import xml.etree.ElementTree as ET

    import networkx as nx

    from .errors import PgmBoltzError
    from .machine import compile as compile_model

    try:
        G = nx.read_graphml(args.graph)
    except (OSError, ET.ParseError, nx.NetworkXError, KeyError, ValueError,
            TypeError) as err:
        detail = _os_message(err) if isinstance(err, OSError) else str(err)
        raise _UsageError(f"cannot read {args.graph!r} as a GraphML file: "
                          f"{detail or type(err).__name__}") from None
    try:
        model = compile_model(G, engine=args.engine)
    except PgmBoltzError as err:
        raise _UsageError(f"the graph in {args.graph!r} does not compile: {err}") from None
    print(model.plan)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    os.makedirs(args.out, exist_ok=True)  # fail before training, not after it
    if not os.access(args.out, os.W_OK):
        raise PermissionError(13, "cannot write in the folder", args.out)
    return run_demo(out=args.out, epochs=args.epochs, quick=args.quick)


# ------------------------------------------------------------------ parser


def _version() -> str:
    from ._version import __version__

    return f"pgm-boltz {__version__}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pgm-boltz`` command.

    >>> parser = build_parser()
    >>> parser.parse_args(["seed", "--epochs", "20"]).epochs
    20
    """
    parser = argparse.ArgumentParser(
        prog="pgm-boltz", description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version(),
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, title="commands",
                                metavar="COMMAND")

    p = sub.add_parser(
        "demo", help="train an RBM on the bundled digits and write figures",
        description="Train a 64x16 binary RBM on scikit-learn's 8x8 digits by persistent "
                    "contrastive divergence, print the exact held-out negative "
                    "log-likelihood, and write digits_samples.png and training_curves.png "
                    "into the output folder. Needs the examples extra "
                    "(pip install 'pgm-boltz[examples]').")
    p.add_argument("--out", type=_out_folder, default="pgm_boltz_demo", metavar="FOLDER",
                   help="folder for the figures, made if missing (default: %(default)s)")
    p.add_argument("--epochs", type=_positive_int, default=None, metavar="N",
                   help="training epochs, at least 1 (default: 40, or 6 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="a short run: fewer epochs and sampling sweeps (a smoke test)")
    p.set_defaults(func=_demo)

    p = sub.add_parser(
        "seed", help="the two-spin seed example: Hebbian rule vs exact training",
        description="Fit a fully visible two-spin Boltzmann machine to ten observed rows, "
                    "first by the Hebbian rule, then by exact maximum likelihood, and print "
                    "both distributions and their KL divergence to the data.")
    p.add_argument("--epochs", type=_positive_int, default=500, metavar="N",
                   help="exact training epochs, at least 1 (default: %(default)s)")
    p.set_defaults(func=_seed)

    p = sub.add_parser(
        "plan", help="print the compiler's plan for a GraphML file",
        description="Read a declared graph from a GraphML file (node attributes role and "
                    "domain, optional levels and bias; optional edge weight), compile it, "
                    "and print the plan: the engine chosen, why, and what it costs.")
    p.add_argument("graph", type=_graph_file, metavar="GRAPH",
                   help="the GraphML file declaring the model")
    p.add_argument("--engine", choices=_ENGINES, default="auto", metavar="ENGINE",
                   help="the engine to plan for: %(choices)s (default: %(default)s)")
    p.set_defaults(func=_plan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pgm-boltz`` console script; returns the exit status.

    Usage errors print the usage and a one-line message on stderr (status 2); errors of
    the package and of the operating system print one line on stderr (status 1, or 2
    when an input file is at fault); no traceback is shown for either.

    >>> main(["--version"])  # doctest: +ELLIPSIS
    pgm-boltz ...
    0
    """
    from .errors import PgmBoltzError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    prefix = f"pgm-boltz {args.command}: error:"
    try:
        return int(args.func(args) or 0)
    except _UsageError as err:
        print(f"{prefix} {err}", file=sys.stderr)
        return EXIT_USAGE
    except PgmBoltzError as err:
        print(f"{prefix} {err}", file=sys.stderr)
        return EXIT_FAILURE
    except ModuleNotFoundError as err:
        print(f"{prefix} this command needs the package {err.name!r}, which is not "
              "installed; install the extras with: pip install 'pgm-boltz[examples]'",
              file=sys.stderr)
        return EXIT_FAILURE
    except OSError as err:
        print(f"{prefix} {_os_message(err)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"pgm-boltz {args.command}: interrupted", file=sys.stderr)
        return _EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
