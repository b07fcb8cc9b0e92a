"""Host memory for training: the process's allocator (tcmalloc where installed), and, on glibc's own
allocator, a fixed mmap threshold where ``train.bound_heap`` asks for it (off by default: it costs CPU).

**The allocator.** The ``metanmt`` command restarts itself once, before torch is imported, with tcmalloc
preloaded (``LD_PRELOAD``) where the dynamic loader finds it (Debian/Ubuntu: ``libtcmalloc-minimal4``); the
environment variable ``METANMT_ALLOCATOR`` picks ``tcmalloc``, ``jemalloc`` or ``system`` (glibc's malloc, no
restart). Measured on the offline Tatoeba config over 1,000 meta-steps (``benchmarks/rss.md``), tcmalloc held
MetaNMT's RSS flat at ~0.85 GB where glibc's grew past 2.2 GB, for 10-14% less CPU per step; jemalloc held it
lower still but returned and faulted pages back in all along (+16% CPU). The numbers do not change: an
allocator decides where tensors live, not what is computed (``tests/test_pipeline.py`` trains both ways).

**glibc's heap.** glibc serves a block above its *mmap threshold* with a mapping of its own, returned to the
system when it is freed; smaller blocks come from the heap, which gives memory back only from its top. The
threshold starts at 128 KiB, but glibc raises it to the size of every mapped block that is freed, up to 32
MiB. A training step frees such blocks at once (logits and their gradients), so after the first steps every
tensor under 32 MiB lives in the heap. Meta-training allocates many of those with ever-changing sizes (the
logits of its small support and query batches of variable shape, about 13 MB each on the offline Tatoeba
config): the heap fragments and keeps growing. There its free-but-held heap grew from 110 MB to 830 MB in 100
steps while the memory in use stayed at 210-230 MB, and a long run's RSS reached 1.7x the baseline's, whose
larger batches' logits (about 45 MB) stay above 32 MiB and always get mappings of their own
(``benchmarks/rss.md``).

A threshold fixed at 1 MiB keeps every large tensor out of the heap, in both systems: the meta-training RSS
stays flat. The price is a fresh mapping, page-faulted in, for each large tensor: on that 2-core VM about
0.17 s more system time per meta-step (+30% CPU), the cost the baseline's own logits already had. Setting
``MALLOC_MMAP_THRESHOLD_`` in the environment (to glibc's maximum, 33554432, for the old behaviour) wins.
Starting the process with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc 2.35+, transparent huge pages in
``madvise`` mode) faults those mappings in 2 MiB at a time: the bound then costs ~7% CPU instead of ~30%.
Releasing the free pages every 25 steps instead (``malloc_trim``) cost 2% but bounded little: the RSS came
back within a few steps, its peak 22% lower instead of 38%.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
from collections.abc import Mapping

from metanmt.registry import lookup

MMAP_THRESHOLD = 1 << 20  # bytes
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
ENV_OVERRIDE = "MALLOC_MMAP_THRESHOLD_"  # glibc's own setting: when the user sets it, it is left alone

ALLOCATOR_ENV = "METANMT_ALLOCATOR"  # the user's choice, a name of ALLOCATORS
DEFAULT_ALLOCATOR = "tcmalloc"
# The registry of allocators: name -> the libraries (names for ctypes.util.find_library) that provide it
ALLOCATORS: dict[str, tuple[str, ...]] = {
    "tcmalloc": ("tcmalloc_minimal", "tcmalloc"),
    "jemalloc": ("jemalloc",),
    "system": (),
}
# tcmalloc reports each allocation over 1 GiB on stderr; a long run's largest batches pass that now and then
QUIET = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40)}


def allocator_environment(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment that preloads the allocator ``environ`` asks for, or None where the process should go
    on as it is: glibc's chosen, not Linux, an allocator preloaded already (by the restart or by the user),
    or the library not found (a warning when it was asked for by name)."""
    name = environ.get(ALLOCATOR_ENV, DEFAULT_ALLOCATOR)
    libraries = lookup(ALLOCATORS, name, f"memory allocator ({ALLOCATOR_ENV})")
    if not libraries or allocator_in_use(environ) != "system" or not sys.platform.startswith("linux"):
        return None
    found = next(filter(None, map(ctypes.util.find_library, libraries)), None)
    if found is None:
        if ALLOCATOR_ENV in environ:
            print(f"metanmt: {ALLOCATOR_ENV}={name}: no lib{libraries[0]} found; glibc's allocator is used",
                  file=sys.stderr)
        return None
    preload = " ".join(filter(None, [found, environ.get("LD_PRELOAD")]))
    return {**QUIET, **environ, "LD_PRELOAD": preload}


def restart_with_allocator() -> None:
    """Replace this process (same PID, arguments and descriptors) by one with the chosen allocator preloaded,
    where :func:`allocator_environment` gives one. Call it first thing: whatever ran before runs again."""
    env = allocator_environment(os.environ)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, env)
    except OSError as err:  # no interpreter path to restart (embedded Python): go on with glibc's allocator
        print(f"metanmt: could not restart with {allocator_in_use(env)} ({err}); glibc's allocator is used",
              file=sys.stderr)


def allocator_in_use(environ: Mapping[str, str] = os.environ) -> str:
    """The allocator ``LD_PRELOAD`` gives the process (a name of :data:`ALLOCATORS`), whoever set it."""
    preload = environ.get("LD_PRELOAD", "")
    return next((name for name, libraries in ALLOCATORS.items()
                 if any(f"lib{library}." in preload for library in libraries)), "system")


def bound_heap(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes (it no longer rises as blocks are freed).

    Returns whether it was set: False off glibc's allocator (other allocators behave otherwise) or when the
    environment sets ``MALLOC_MMAP_THRESHOLD_``, which glibc has already applied. Calling it again changes
    nothing.
    """
    if platform.libc_ver()[0] != "glibc" or allocator_in_use() != "system" or os.environ.get(ENV_OVERRIDE):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
