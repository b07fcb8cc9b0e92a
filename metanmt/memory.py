"""Bounded host memory for training: a fixed glibc mmap threshold, set where training starts when
``train.bound_heap`` asks for it (off by default: it costs CPU).

glibc serves a block above its *mmap threshold* with a mapping of its own, returned to the system when it is
freed; smaller blocks come from the heap, which gives memory back only from its top. The threshold starts at
128 KiB, but glibc raises it to the size of every mapped block that is freed, up to 32 MiB. A training step
frees such blocks at once (logits and their gradients), so after the first steps every tensor under 32 MiB
lives in the heap. Meta-training allocates many of those with ever-changing sizes (the logits of its small
support and query batches of variable shape, about 13 MB each on the offline Tatoeba config): the heap
fragments and keeps growing. There its free-but-held heap grew from 110 MB to 830 MB in 100 steps while the
memory in use stayed at 210-230 MB, and a long run's RSS reached 1.7x the baseline's, whose larger batches'
logits (about 45 MB) stay above 32 MiB and always get mappings of their own (``benchmarks/rss.md``).

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
import os
import platform

MMAP_THRESHOLD = 1 << 20  # bytes
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
ENV_OVERRIDE = "MALLOC_MMAP_THRESHOLD_"  # glibc's own setting: when the user sets it, it is left alone


def bound_heap(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes (it no longer rises as blocks are freed).

    Returns whether it was set: False off glibc (other allocators behave otherwise) or when the environment
    sets ``MALLOC_MMAP_THRESHOLD_``, which glibc has already applied. Calling it again changes nothing.
    """
    if platform.libc_ver()[0] != "glibc" or os.environ.get(ENV_OVERRIDE):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
