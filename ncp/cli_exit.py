"""The exit-code contract every command of the project keeps: 0 ok, 1 a policy violation or failed gate, 2 bad
input, 3 an internal error, and the one exception hierarchy that maps onto it. A command raises a `BadInput` (or a
subclass: every input error of the project is one) or a `GateFailed`; `run_command`, which the `ncp` CLI wraps every
command in, prints its one line and exits with its code, and turns any other exception into exit 3 with where it
happened instead of a bare traceback (`--debug` in argv shows the traceback)."""
import os
import sys
import traceback
from pathlib import Path
from typing import Callable, Optional, Sequence

OK, FAILED_GATE, BAD_INPUT, INTERNAL_ERROR = 0, 1, 2, 3


class NcpError(Exception):
    """An error a command reports in one line; `exit_code` is what the process exits with."""
    exit_code = INTERNAL_ERROR


class BadInput(NcpError):
    """The user's input (a config, a file, a flag, a kubeconfig, a revision) is wrong: exit 2, the message names the
    file, the key and the fix."""
    exit_code = BAD_INPUT


class GateFailed(NcpError):
    """A policy, threshold or promotion gate refused: exit 1."""
    exit_code = FAILED_GATE


class OutputPathError(BadInput):
    """A file or directory the user asked for (`--out`) that cannot be created: bad input, not a bug."""


def prepare_output(path: Path, option: str, directory: bool = False) -> Path:
    """Check that `path` (a file, or with `directory` a directory to create) can be written; name `option` if not."""
    folder = path if directory else path.parent
    if not directory and path.is_dir():
        raise OutputPathError(f"{option} {path}: is a directory; name a file in it")
    try:
        folder.mkdir(parents=True, exist_ok=True) if directory else None
    except OSError as error:
        raise OutputPathError(f"{option} {path}: cannot be created ({error.strerror}); choose a writable path") \
            from None
    if not folder.is_dir():
        raise OutputPathError(f"{option} {path}: the directory {folder} does not exist; create it "
                              f"(mkdir -p {folder}) or write elsewhere")
    if not os.access(folder, os.W_OK):
        raise OutputPathError(f"{option} {path}: {folder} is not writable; choose a writable path")
    return path


def run_command(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments
    try:
        return main([a for a in arguments if a != "--debug"])
    except NcpError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:  # the reader (e.g. `| head`) has all it wants: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except Exception as error:  # noqa: BLE001 - the one place that turns a bug into exit code 3
        if debug:
            traceback.print_exc()
        frame = traceback.extract_tb(error.__traceback__)[-1]
        print(f"internal error: {type(error).__name__}: {error}\n  at {frame.filename}:{frame.lineno}\n"
              "  this is a bug in the program, not in its input; rerun with --debug for the traceback",
              file=sys.stderr)
        return INTERNAL_ERROR
