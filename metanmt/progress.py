"""Progress bars that suit where the output goes: tqdm's bar on a terminal, plain lines in a log.

A redrawn bar is one line on a terminal but hundreds of carriage-return updates in a log file, in CI or
under nohup; there the same call prints a plain status line at most every :data:`LOG_EVERY_S` seconds and
one at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm as plain_tqdm
from tqdm.auto import tqdm

LOG_EVERY_S = 30.0


def progress_bar(iterable: Iterable | None = None, *, file: IO[str] | None = None, **options: Any) -> tqdm:
    """``tqdm(iterable, **options)`` on a terminal; periodic plain lines when ``file`` (default stderr) is
    not one. As in tqdm, ``disable=None`` shows progress on a terminal only."""
    file = sys.stderr if file is None else file
    terminal = _is_terminal(file)
    if options.get("disable", False) is None:
        options["disable"] = not terminal
    if terminal:
        return tqdm(iterable, file=file, **options)
    options.setdefault("mininterval", LOG_EVERY_S)
    return _PlainLines(iterable, file=_NoCarriageReturns(file), **{**options, "leave": False})


def _is_terminal(file: IO[str]) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


class _PlainLines(plain_tqdm):
    """tqdm writing its status as a whole line (no redraw, no cursor moves), and a last line at the end."""

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg is None:  # a status update; close() clears with msg=""
            self.fp.write(self.__str__() + "\n")
            self.fp.flush()
        return True

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        """The postfix shows in the next periodic line: a log gets no extra line per update."""
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        super().set_description(desc, refresh=False)

    def close(self) -> None:
        if not self.disable and self.n != self.last_print_n:
            self.display()  # the final state, unless it was the last line printed
        super().close()


class _NoCarriageReturns:
    """The wrapped file without tqdm's carriage returns (what remains of a cleared bar)."""

    def __init__(self, file: IO[str]) -> None:
        self.file = file

    def write(self, text: str) -> None:
        text = text.replace("\r", "")
        if text:
            self.file.write(text)

    def flush(self) -> None:
        self.file.flush()
