"""Bounded host memory (metanmt.memory): a large block freed by one training step must not pull the next
ones into glibc's heap. Each case runs in a fresh interpreter, whose heap holds no large free block."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from metanmt import memory
from metanmt.errors import MetaNMTError
from metanmt.memory import ENV_OVERRIDE, bound_heap

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")

# Allocates and frees an 8 MiB block three times; prints whether each one had a mapping of its own
# (glibc's mapped bytes grew by its size while it was held).
PROBE = """
import ctypes, json, sys
from metanmt.memory import bound_heap
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks "
                                               "fordblks keepcost").split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype, libc.malloc.restype = Info, ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
set_ = bound_heap() if sys.argv[1] == "bounded" else None
mapped = []
for _ in range(3):
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(8 << 20)
    mapped.append(libc.mallinfo2().hblkhd - before >= 8 << 20)
    libc.free(block)
print(json.dumps({"set": set_, "mapped": mapped}))
"""


def probe(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env,
                          check=True)
    return json.loads(done.stdout)


def test_glibc_pulls_large_blocks_into_the_heap_once_one_is_freed():
    """The cause: the threshold rises with the first freed block; the next ones come from the heap."""
    assert probe("default")["mapped"] == [True, False, False]


def test_bound_heap_keeps_every_large_block_in_its_own_mapping():
    assert probe("bounded") == {"set": True, "mapped": [True, True, True]}


def test_an_explicit_glibc_setting_is_left_alone(monkeypatch):
    monkeypatch.setenv(ENV_OVERRIDE, "33554432")
    assert bound_heap() is False


# ---- the allocator the `metanmt` command restarts itself with (metanmt.memory.allocator_environment)

FOUND = {"tcmalloc_minimal": "libtcmalloc_minimal.so.4", "jemalloc": "libjemalloc.so.2"}


@pytest.fixture
def libraries(monkeypatch):
    """The dynamic loader finds tcmalloc and jemalloc, whatever this machine has."""
    monkeypatch.setattr(memory.ctypes.util, "find_library", FOUND.get)


def test_tcmalloc_is_preloaded_by_default_before_what_the_user_preloads(libraries):
    env = memory.allocator_environment({"LD_PRELOAD": "libmine.so", "HOME": "/h"})
    assert env["LD_PRELOAD"] == "libtcmalloc_minimal.so.4 libmine.so" and env["HOME"] == "/h"
    assert memory.allocator_in_use(env) == "tcmalloc"


def test_the_user_picks_the_allocator_by_name(libraries):
    env = memory.allocator_environment({memory.ALLOCATOR_ENV: "jemalloc"})
    assert env["LD_PRELOAD"] == "libjemalloc.so.2" and memory.allocator_in_use(env) == "jemalloc"


@pytest.mark.parametrize("environ", [
    {memory.ALLOCATOR_ENV: "system"},                       # glibc's, asked for
    {"LD_PRELOAD": "libtcmalloc_minimal.so.4"},             # the restarted process itself
    {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2 libmine.so"},  # another allocator, preloaded by the user
])
def test_no_restart(libraries, environ):
    assert memory.allocator_environment(environ) is None


def test_a_missing_library_is_reported_only_when_asked_for_by_name(monkeypatch, capsys):
    monkeypatch.setattr(memory.ctypes.util, "find_library", lambda name: None)
    assert memory.allocator_environment({}) is None
    assert capsys.readouterr().err == ""
    assert memory.allocator_environment({memory.ALLOCATOR_ENV: "jemalloc"}) is None
    assert "METANMT_ALLOCATOR=jemalloc: no libjemalloc found" in capsys.readouterr().err


def test_an_unknown_allocator_is_an_error_naming_the_variable():
    known = r"memory allocator \(METANMT_ALLOCATOR\) 'tcmaloc'; known: jemalloc"
    with pytest.raises(MetaNMTError, match=known):
        memory.allocator_environment({memory.ALLOCATOR_ENV: "tcmaloc"})
    done = subprocess.run([sys.executable, "-m", "metanmt", "--version"], capture_output=True, text=True,
                          env={**os.environ, memory.ALLOCATOR_ENV: "tcmaloc"}, check=False)
    assert done.returncode == 2 and "METANMT_ALLOCATOR" in done.stderr


def test_bound_heap_leaves_another_allocator_alone(monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4")
    assert memory.allocator_in_use() == "tcmalloc" and bound_heap() is False


@pytest.mark.skipif(not memory.allocator_environment({}), reason="no tcmalloc here (libtcmalloc-minimal4)")
def test_the_restarted_process_has_tcmalloc_mapped():
    code = ("from metanmt.memory import restart_with_allocator; restart_with_allocator(); "
            "print('tcmalloc' in open('/proc/self/maps').read())")
    env = {k: v for k, v in os.environ.items() if k not in ("METANMT_ALLOCATOR", "LD_PRELOAD")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == ["True"]


def test_a_failed_restart_goes_on_on_glibc(libraries, monkeypatch, capsys):
    def fail(*args):
        raise OSError("no interpreter")

    monkeypatch.delenv(memory.ALLOCATOR_ENV, raising=False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.setattr(memory.os, "execve", fail)
    memory.restart_with_allocator()
    assert "could not restart with tcmalloc (no interpreter)" in capsys.readouterr().err


def test_the_command_line_help_names_the_allocator_variable():
    from metanmt.cli import build_parser

    assert "METANMT_ALLOCATOR" in build_parser().format_help()
