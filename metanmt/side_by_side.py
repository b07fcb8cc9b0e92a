"""Work shared among processes that run side by side, each with its share of the CPU threads.

Small models learn more per CPU-second side by side on one thread each than one after the other on two
threads: their matrices are too small to keep a second thread busy. The quickstart on 2 cores
(``benchmarks/quickstart_tuning.md``) trains its two systems in 4 min 35 s side by side against 9 min 4 s one
after the other.

Each process writes to its own log; the parent prints their lines as they come, each behind its job's name.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from metanmt.errors import MetaNMTError

POLL_S = 0.5  # how often the parent looks for new log lines
Job = tuple[Callable[..., Any], tuple]  # a module-level function (spawned processes import it) and its args


def run_side_by_side(jobs: Mapping[str, Job], log_dir: str | Path, threads: int | None = None) -> None:
    """Run each job ``name -> (function, args)`` in its own spawned process with ``threads`` torch threads
    (default: this process's threads shared out evenly, at least one) and wait for all of them.

    Job ``name`` logs to ``log_dir/name.log`` (appended: a re-run keeps the earlier lines). A failed job is an
    error naming it and its log, raised once every job has ended: the others' work is kept. Interrupted
    (Ctrl-C, or SIGTERM to this process alone), the parent stops its jobs before it exits: none is left
    running without it.
    """
    import torch

    threads = threads or max(1, torch.get_num_threads() // len(jobs))
    logs = {name: Path(log_dir) / f"{name}.log" for name in jobs}
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    starts = {name: log.stat().st_size if log.is_file() else 0 for name, log in logs.items()}
    context = mp.get_context("spawn")  # nothing of the parent's state (threads, torch, open files) is shared
    processes = {name: context.Process(target=_run_job, args=(*job, threads, logs[name]), name=name)
                 for name, job in jobs.items()}
    print(f"side by side, {threads} thread(s) each: {', '.join(jobs)} (logs in {log_dir})", flush=True)
    with _stopping_on_interrupt(processes):
        for process in processes.values():
            process.start()
        _follow(processes, logs, starts)
    failed = [f"{name} (exit code {p.exitcode}; its log: {logs[name]})" for name, p in processes.items()
              if p.exitcode != 0]
    if failed:
        raise MetaNMTError(f"failed: {', '.join(failed)}")


@contextmanager
def _stopping_on_interrupt(processes: Mapping[str, mp.process.BaseProcess]) -> Iterator[None]:
    """SIGTERM raises here as Ctrl-C does; either way the processes are terminated (their checkpoints are
    written atomically, so a re-run resumes from the last one) before the interruption goes on."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    main = threading.current_thread() is threading.main_thread()  # where Python lets a handler be set
    previous = signal.signal(signal.SIGTERM, interrupt) if main else None
    try:
        yield
    except BaseException:
        for process in processes.values():
            if process.is_alive():
                process.terminate()
                process.join()
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _run_job(function: Callable[..., Any], args: tuple, threads: int, log: Path) -> None:
    """In the child: stdout and stderr (C level too) to ``log``, ``threads`` torch threads, then the job."""
    import torch

    with open(log, "a", encoding="utf-8") as out:
        for fd in (1, 2):
            os.dup2(out.fileno(), fd)
    sys.stdout.reconfigure(line_buffering=True)  # whole lines reach the parent as soon as they are printed
    torch.set_num_threads(threads)
    function(*args)


def _follow(processes: Mapping[str, mp.process.BaseProcess], logs: Mapping[str, Path],
            starts: Mapping[str, int]) -> None:
    """Print each log's new lines behind its job's name until every process has ended."""
    with ExitStack() as files:
        readers = {}
        for name, log in logs.items():
            log.touch()
            readers[name] = files.enter_context(open(log, encoding="utf-8", errors="replace"))
            readers[name].seek(starts[name])
        partial = dict.fromkeys(logs, "")
        while True:
            running = any(p.is_alive() for p in processes.values())  # before reading: the last read gets all
            for name, reader in readers.items():
                *lines, partial[name] = (partial[name] + reader.read()).split("\n")
                for line in lines + ([partial[name]] if not running and partial[name] else []):
                    print(f"[{name}] {line}", flush=True)
            if not running:
                break
            time.sleep(POLL_S)
    for process in processes.values():
        process.join()
