"""What every command shares: the app, the console, the journal option, and turning a user
error into one `error:` line with exit code 2."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from flipbench import __version__
from flipbench.config import load_env_file
from flipbench.errors import FlipbenchError, RunInterrupted
from flipbench.safety import mask_secrets, scrub, terminal_safe

# Plain (click) help, not rich panels: rich's option table cuts long option names at 80
# columns (`--max-attempts-fa…`); click's wraps the help text and keeps every name whole.
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Measure whether a language model can follow a requested probability distribution.",
)


def _print_version(value: bool) -> None:
    if value:
        print(f"flipbench {__version__}")
        raise typer.Exit()


@app.callback(
    epilog="Experiments, their grids and defaults: `flipbench experiments`. Runs in the journal:"
    " `flipbench runs`. Each command's options: `flipbench COMMAND --help`."
)
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Measure whether a language model can follow a requested probability distribution."""


# No markup or emoji codes: text from a journal, a server or the user (`[/bold]`, `[link=…]`,
# `:smile:`) is printed as it is. Styled output is built as `Text`.
out = Console(soft_wrap=True, markup=False, emoji=False)

DbOption = Annotated[
    Path,
    typer.Option("--db", envvar="FLIPBENCH_DB", help="journal file (SQLite)", show_default=True),
]


ERROR_LINE_CHARS = 2000  # an error line is cut here (a server's message can be any length)
#: Options whose flag is not the field name with dashes (RunConfig field -> CLI flag).
_FLAGS = {
    "timeout_s": "--timeout",
    "p_values": "--p",
    "model_options": "-M",
    "backend_options": "-B",
}


def plain(value: object) -> Text:
    """Stored or received text for the terminal: printed literally (no markup), with control
    characters and escape sequences made visible and credentials masked."""
    return Text(terminal_safe(mask_secrets(str(value))))


def options_given(ctx: typer.Context, allowed: frozenset[str]) -> list[str]:
    """The options of `ctx`'s command given on the command line or from the environment,
    other than `allowed` (by parameter name), as their longest flag: what a `--resume`
    refuses, since the stored plan defines them and one silently ignored would mislead."""
    given = []
    for param in ctx.command.params:
        if param.name is None or param.name in allowed:
            continue
        source = ctx.get_parameter_source(param.name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            given.append(max(param.opts, key=len))
    return given


def usage_failure(message: str) -> typer.Exit:
    print(f"error: {scrub(message, ERROR_LINE_CHARS)}", file=sys.stderr)
    return typer.Exit(code=2)


def _validation_line(exc: ValidationError) -> str:
    """The first problem, named by the flag that set it: `--n: Input should be …`."""
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    message = str(first["msg"]).removeprefix("Value error, ")
    if exc.title != "RunConfig" or not loc:
        where = ".".join(loc)
        return f"{exc.title} {where}: {message}" if where else f"{exc.title}: {message}"
    flag = _FLAGS.get(loc[0], "--" + loc[0].replace("_", "-"))
    return message if message.startswith(flag + " ") else f"{flag}: {message}"


@contextmanager
def user_errors(env_file: Path | None = None) -> Iterator[None]:
    """What every long-running command shares: load the .env file, then turn a user error into
    one `error:` line and exit code 2, and Ctrl-C into the resume hint and exit code 130."""
    try:
        if env_file is not None:
            load_env_file(env_file)
        yield
    except RunInterrupted as exc:
        print(scrub(str(exc), ERROR_LINE_CHARS), file=sys.stderr)
        raise typer.Exit(code=130) from None
    except ValidationError as exc:
        raise usage_failure(_validation_line(exc)) from None
    except FlipbenchError as exc:
        raise usage_failure(str(exc)) from None


def parse_model_options(pairs: list[str], flag: str = "-M") -> dict[str, Any]:
    """`-M key=value` pairs (or `flag`'s: `-B`); values are JSON when they parse as JSON, else
    strings."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise FlipbenchError(f"{flag} expects NAME=VALUE, got {pair[:60]!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
        except RecursionError:
            raise FlipbenchError(
                f"{flag} {key.strip()[:40]}: the JSON value is nested too deep"
            ) from None
    return options
