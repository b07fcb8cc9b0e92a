"""Progress bars: a redrawn bar on a terminal, plain periodic lines everywhere else."""

from __future__ import annotations

import io

from metanmt.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_plain_lines_not_carriage_returns():
    log = io.StringIO()
    for _ in progress_bar(range(1000), desc="steps", file=log, mininterval=0):
        pass
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines and all(line.startswith("steps:") for line in lines)
    assert "1000/1000" in lines[-1]
    assert len(lines) == len(set(lines))  # the final state is printed once


def test_a_log_file_gets_at_most_one_line_per_interval():
    log = io.StringIO()
    bar = progress_bar(total=1000, desc="tokens", file=log)  # the default interval: far longer than this test
    for _ in range(1000):
        bar.update()
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "0/1000" in lines[0] and "1000/1000" in lines[1]


def test_postfix_and_description_updates_add_no_lines_to_a_log():
    log = io.StringIO()
    bar = progress_bar(total=100, desc="fine-tune", file=log)
    for i in range(100):
        bar.update()
        bar.set_postfix(loss=f"{1 / (i + 1):.3f}")
        bar.set_description(f"fine-tune {i}")
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "100/100" in lines[-1] and "loss=0.010" in lines[-1]


def test_a_terminal_gets_tqdms_bar_and_disable_silences_both():
    tty = Terminal()
    for _ in progress_bar(range(10), desc="steps", file=tty):
        pass
    assert "\r" in tty.getvalue()
    quiet = io.StringIO()
    for disable in (True, None):  # None, as in tqdm: progress on a terminal only
        for _ in progress_bar(range(10), file=quiet, disable=disable):
            pass
    assert quiet.getvalue() == ""
    for _ in progress_bar(range(10), file=tty, disable=None):
        pass
    assert tty.getvalue().count("10/10") == 2
