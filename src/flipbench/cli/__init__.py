"""The `flipbench` command: a thin layer over `flipbench.api`, one module per group of commands
(`runs`: demo, run, show, export; `catalog`: runs, experiments, delete; `battery`: bench,
leaderboard, import)."""

from __future__ import annotations

import sys

import typer
from typer.exceptions import TyperException

# isort: off
from flipbench.cli import runs  # first: its commands lead the help
from flipbench.cli import catalog
from flipbench.cli import battery
from flipbench.cli import report as report  # registers `report` and `compare`
from flipbench.cli import sweep as sweep  # registers `sweep` (run, show, list)
from flipbench.cli import matrix as matrix  # registers `matrix` (run, show)

# isort: on
from flipbench.cli.catalog import delete_cmd, experiments_cmd, runs_cmd
from flipbench.cli.common import ERROR_LINE_CHARS, app, out, plain
from flipbench.cli.output import print_results
from flipbench.cli.runs import demo, export, run, show
from flipbench.safety import scrub

__all__ = [
    "app", "battery", "catalog", "delete_cmd", "demo", "experiments_cmd", "export", "main", "out",
    "plain", "print_results", "run", "runs", "runs_cmd", "show",
]  # fmt: skip


def main() -> None:
    """Entry point: usage errors (`--n abc`, an unknown option) are one `error:` line and exit
    code 2, like every other bad input, not a framed box."""
    try:
        code = app(standalone_mode=False)
    except TyperException as exc:
        message = exc.format_message()
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `flipbench`: the help, as asked
            print(message)
            sys.exit(0)
        known = typer.main.get_command(app).commands  # type: ignore[attr-defined]
        command = next((a for a in sys.argv[1:2] if a in known), "")
        hint = f" (see `flipbench {command} --help`)" if command else " (see `flipbench --help`)"
        print(f"error: {scrub(message, ERROR_LINE_CHARS)}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
