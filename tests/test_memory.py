"""Bounded host memory (metanmt.memory): a large block freed by one training step must not pull the next
ones into glibc's heap. Each case runs in a fresh interpreter, whose heap holds no large free block."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

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
