"""Jobs side by side: each in its own process with its share of the threads, its log, its lines shown behind
its name; a failed job is an error that names it and its log, and the others' work is kept."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from metanmt.errors import MetaNMTError
from metanmt.side_by_side import run_side_by_side


def _report(out: str, text: str) -> None:
    print(text)
    print("no newline at the end", end="")
    Path(out).write_text(f"{os.getpid()} {torch.get_num_threads()}")


def _fail(message: str) -> None:
    raise MetaNMTError(message)


def test_each_job_runs_in_its_own_process_with_its_share_of_threads(tmp_path, capfd):
    jobs = {name: (_report, (str(tmp_path / f"{name}.out"), f"hello from {name}")) for name in ("a", "b")}
    run_side_by_side(jobs, tmp_path / "logs", threads=1)
    seen = {name: (tmp_path / f"{name}.out").read_text().split() for name in jobs}
    pids = {pid for pid, _ in seen.values()}
    assert len(pids) == 2 and str(os.getpid()) not in pids
    assert all(threads == "1" for _, threads in seen.values())
    shown = capfd.readouterr().out.splitlines()
    for name in jobs:
        assert f"[{name}] hello from {name}" in shown
        assert f"[{name}] no newline at the end" in shown  # the last, unfinished line too
        assert (tmp_path / "logs" / f"{name}.log").read_text() == f"hello from {name}\nno newline at the end"


def test_threads_are_shared_out_evenly_and_a_rerun_shows_only_its_own_lines(tmp_path, capfd):
    threads = torch.get_num_threads()
    jobs = {"a": (_report, (str(tmp_path / "a.out"), "first run"))}
    run_side_by_side(jobs, tmp_path / "logs")
    assert (tmp_path / "a.out").read_text().split()[1] == str(threads)  # one job: all the threads
    capfd.readouterr()
    run_side_by_side({"a": (_report, (str(tmp_path / "a.out"), "second run"))}, tmp_path / "logs")
    shown = capfd.readouterr().out
    assert "[a] second run" in shown and "first run" not in shown
    assert "first run" in (tmp_path / "logs" / "a.log").read_text()  # the log keeps both runs


def test_a_failed_job_is_an_error_naming_it_and_the_others_finish(tmp_path, capfd):
    jobs = {"bad": (_fail, ("unknown language code 'xx'",)),
            "good": (_report, (str(tmp_path / "g.out"), "ok"))}
    log = tmp_path / "logs" / "bad.log"
    with pytest.raises(MetaNMTError, match=rf"failed: bad \(exit code 1; its log: {log}\)$"):
        run_side_by_side(jobs, tmp_path / "logs", threads=1)
    assert (tmp_path / "g.out").is_file()
    assert "unknown language code 'xx'" in log.read_text()
    assert "[bad] metanmt.errors.MetaNMTError: unknown language code 'xx'" in capfd.readouterr().out


def _jobs_of(pid: int) -> set[int]:
    """The spawned job processes whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            spawned = b"spawn_main" in (proc / "cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile
        if parent == pid and spawned:
            found.add(int(proc.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process table from Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_parent_stops_its_jobs(tmp_path, sig):
    jobs = "{'a': (time.sleep, (120,)), 'b': (time.sleep, (120,))}"
    code = ("import signal, time\nfrom metanmt.side_by_side import run_side_by_side\n"
            # Ctrl-C as on a terminal: a shell starts background jobs (CI under nohup) with SIGINT ignored
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            f"run_side_by_side({jobs}, {str(tmp_path)!r}, 1)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(_jobs_of(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = _jobs_of(parent.pid)
        assert len(pids) == 2, parent.stdout.read() if parent.poll() is not None else pids
        time.sleep(1)  # the jobs are inside time.sleep
        parent.send_signal(sig)  # to the parent alone, as `kill PID` does
        assert parent.wait(timeout=30) != 0
        time.sleep(0.5)
        left = {pid for pid in pids if Path(f"/proc/{pid}").exists()}
        assert not left, f"jobs {left} left running without their parent"
    finally:  # a failed check leaves nothing behind either
        parent.kill()
        parent.wait()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
