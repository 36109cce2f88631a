"""The commands of the ``elmokit`` CLI, by stage (:mod:`elmokit.cli` puts them in one group): ``lm`` (vocabulary,
pretraining, evaluation, bundling, import, embedding), ``analysis`` (generate, cells, gradients), ``tasks`` (domain
fit and adaptation, downstream training, prediction, scoring). Each command parses options and calls one function;
heavy imports (torch, datasets, accelerate) happen inside the commands so ``elmokit --help`` is instant."""

from __future__ import annotations

import errno
import functools
import sys

import click


def friendly_errors(fn):
    """Turn :class:`~elmokit.core.errors.ElmokitError` into ``error: ...`` on stderr and exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from elmokit.core.errors import ElmokitError

        try:
            return fn(*args, **kwargs)
        except ElmokitError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except OSError as e:  # a full disk where no stage caught it: one line, not a traceback
            if e.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES):  # a path of the wrong kind
                click.echo(f"error: {e.filename or 'a path'}: {e.strerror}; choose another path", err=True)
                sys.exit(2)
            if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise
            click.echo(
                f"error: {e.filename or 'a file'}: cannot write ({e.strerror}); free space and run again "
                f"(with --resume where the command has it)",
                err=True,
            )
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; a run with checkpoints continues with --resume", err=True)
            sys.exit(130)

    return wrapper


def at_least(**options: tuple[float, float]) -> None:
    """Refuse an option below its least value in one line: ``at_least(**{"--batch": (batch, 1)})``.

    Raises:
        ElmokitError: naming the option, its value and the least one.
    """
    from elmokit.core.errors import ElmokitError

    for option, (value, least) in options.items():
        if value < least:
            raise ElmokitError(f"{option} {value}: must be {least} or more")


def choice_option(name: str, choices, default: str, help: str, dest: str | None = None):
    """``--name`` taking one of ``choices`` (shown with its default in ``--help``)."""
    decls = (name, dest) if dest else (name,)
    return click.option(*decls, type=click.Choice(choices), default=default, show_default=True, help=help)


def cache_dir_option(what: str = "encoded corpora"):
    """``--cache-dir``, where encoded text is cached (``ELMOKIT_CACHE``)."""
    help = f"Where {what} are cached (env ELMOKIT_CACHE)."
    return click.option("--cache-dir", default="~/.cache/elmokit", show_default=True, envvar="ELMOKIT_CACHE", help=help)
