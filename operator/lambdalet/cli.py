"""The ``lambdalet`` command: one subcommand per task, each a function of its parsed arguments.

    lambdalet crds [--output DIR] [--check]
    lambdalet operator [--verbose] [--liveness URL]
    lambdalet activator
    lambdalet dispatcher

A subcommand is a :class:`Command` in :data:`COMMANDS`: how to add its arguments to its parser,
and what to run. ``main`` returns the exit status, so tests call it directly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from lambdalet.api import crdgen


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _crds_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("crds"),
        metavar="DIR",
        help="directory to write the CRD YAML into (default: ./crds)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a file in DIR differs from what would be written",
    )


def _crds(args: argparse.Namespace) -> int:
    directory: Path = args.output
    if args.check:
        stale = crdgen.stale_files(directory)
        for path in stale:
            print(f"{path} is stale: run `lambdalet crds --output {directory}`", file=sys.stderr)
        return 1 if stale else 0
    for path in crdgen.write_crds(directory):
        print(f"wrote {path}")
    return 0


def _operator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--verbose", action="store_true", help="log at debug level")
    parser.add_argument(
        "--liveness",
        metavar="URL",
        default=None,
        help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz",
    )


def _operator(args: argparse.Namespace) -> int:
    from lambdalet.controller.run import run  # kopf is imported only when operating

    return run(verbose=args.verbose, liveness=args.liveness)


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def _activator(args: argparse.Namespace) -> int:
    from lambdalet.activator.main import run

    return run()


def _dispatcher(args: argparse.Namespace) -> int:
    from lambdalet.dispatcher.main import run

    return run()


COMMANDS: Mapping[str, Command] = MappingProxyType(
    {
        "crds": Command(
            help="generate the CustomResourceDefinitions from the API models",
            add_arguments=_crds_arguments,
            run=_crds,
        ),
        "operator": Command(
            help="run the operator (configuration from LAMBDALET_* environment variables)",
            add_arguments=_operator_arguments,
            run=_operator,
        ),
        "activator": Command(
            help="run the activator (configuration from LAMBDALET_* environment variables)",
            add_arguments=_no_arguments,
            run=_activator,
        ),
        "dispatcher": Command(
            help="run the event dispatcher (configuration from LAMBDALET_* environment variables)",
            add_arguments=_no_arguments,
            run=_dispatcher,
        ),
    }
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambdalet", description="Lambda-style functions on Kubernetes."
    )
    subcommands = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(subcommands.add_parser(name, help=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
