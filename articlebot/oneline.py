"""One-line usage errors for the project's typer programs: the `articlebot` command line, and
bench's programs when they run on their own (`python -m bench.quality`).

Imports neither bench nor the engine, so the command line can use it without loading them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


class OneLineErrors:
    """Mixin: run as a program of its own, a usage error is one line on stderr, not a panel.

    Mixed into the typer group (or single command) that a program runs. Mounted in another
    program (a bench program under `articlebot eval`), that program's own handling applies
    instead.
    """

    def file_problem(self, exc: FileNotFoundError) -> str:
        """A missing file in words: 'no such file: PATH' (a program may say more, such as
        where its data sets belong)."""
        return f"no such file: {exc.filename or exc}"

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Parse and run; standalone, exit with the command's code or a one-line error (2)."""
        run = super().main  # type: ignore[misc]
        if not standalone_mode:
            return run(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = run(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # a usage error, or a bad file the parser opened
            message = exc.format_message()
            if type(exc).__name__ == "NoArgsIsHelpError":  # the help (rich printed it already)
                if message.strip():
                    typer.echo(message, err=True)
                sys.exit(exc.exit_code)
            context = getattr(exc, "ctx", None)
            hint = f" (see {context.command_path} --help)" if context is not None else ""
            line = " ".join(message.split()).rstrip(".")  # "Choose from:" lists span lines
            typer.echo(f"error: {line}{hint}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        except FileNotFoundError as exc:  # a data set not where it was looked for
            typer.echo(f"error: {self.file_problem(exc)}", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


class OneLineErrorsGroup(OneLineErrors, TyperGroup):
    """A typer group whose usage errors are one line when it runs as its own program."""


class OneLineErrorsCommand(OneLineErrors, TyperCommand):
    """A lone typer command whose usage errors are one line when it runs as its own program."""
