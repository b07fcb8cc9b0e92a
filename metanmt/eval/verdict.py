"""The report's verdict, decided from the numbers so that no reader has to infer it from the tables.

Two questions, in order. Has each system learned to translate at all? Its source gap (see
:mod:`metanmt.eval.diagnostics`) answers that; below :data:`~metanmt.eval.diagnostics.MIN_GAP` its BLEU is
noise and so is any comparison with it. Then, for each compared pair of systems (MetaNMT vs MultiNMT first)
and each held-out cell (language, split, fine-tuning size): is one system of the pair better? Only when its
mean BLEU is higher *and* it is ahead with paired-bootstrap p < :data:`ALPHA` on every fine-tuning draw;
one lucky draw is not a result.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metanmt.eval.report import Evaluation

ALPHA = 0.05  # significance level of every draw's paired bootstrap


def mean_gaps(evaluations: Sequence[Evaluation], systems: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per system, its mean source gap over its training-language dev evaluations (no fine-tuning mixed in),
    or over all its evaluations that measured one when it has none (``basis`` says which)."""
    gaps = {}
    for system in systems:
        measured = [e for e in evaluations if e.system == system and e.gap is not None]
        dev = [e for e in measured if e.on_training_language]
        chosen = dev or measured
        gaps[system] = {"gap": statistics.fmean(e.gap for e in chosen) if chosen else None,
                        "n": len(chosen), "basis": "dev" if dev else "all"}
    return gaps


def compare(test: dict[str, Any], first: str, second: str) -> dict[str, Any]:
    """Decide one cell from its per-draw paired bootstrap (a ``tests`` entry of a report table).

    ``winner`` is the better system or None (no significant difference); ``tested`` is False when no draw
    could be tested. The means are over the tested draws.
    """
    done = [d for d in test["draws"] if "skipped" not in d]
    if not done:
        return {"tokens": test["tokens"], "tested": False, "winner": None,
                f"{first}_bleu": None, f"{second}_bleu": None}
    mean = {s: statistics.fmean(d[f"{s}_bleu"] for d in done) for s in (first, second)}
    winner = None
    for system, other in ((first, second), (second, first)):
        ahead = all(d["bleu_p"] < ALPHA and d[f"{system}_bleu"] > d[f"{other}_bleu"] for d in done)
        if ahead and len(done) == len(test["draws"]) and mean[system] > mean[other]:
            winner = system
    return {"tokens": test["tokens"], "tested": True, "winner": winner,
            **{f"{s}_bleu": m for s, m in mean.items()}}


def _pair_block(tables: Sequence[dict[str, Any]], pair: tuple[str, str],
                gaps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The decision of every held-out cell of ``tables`` (in their order) that tested ``pair``, the counts,
    and ``neither_learned`` when both systems of the pair measured a small source gap."""
    from metanmt.eval.diagnostics import MIN_GAP

    comparisons = [{"lang": t["lang"], "split": t["split"], **compare(test, *pair)}
                   for t in tables for test in t["tests"] if test["pair"] == list(pair)]
    tested = [c["winner"] for c in comparisons if c["tested"]]
    counts = {"cells": len(comparisons), **{s: tested.count(s) for s in pair},
              "no_difference": tested.count(None), "not_tested": len(comparisons) - len(tested)}
    pair_gaps = [gaps.get(s, {}).get("gap") for s in pair]
    return {"pair": list(pair), "neither_learned": all(g is not None and g < MIN_GAP for g in pair_gaps),
            "comparisons": comparisons, "counts": counts}


def build_verdict(evaluations: Sequence[Evaluation], tables: Sequence[dict[str, Any]],
                  systems: Sequence[str], pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Source gaps of ``systems`` and one comparison block per pair of ``pairs`` whose both systems are
    among ``systems`` (``"pairs"``). The block of the main pair ``pairs[0]`` is also at the top level
    (``pair``, ``neither_learned``, ``comparisons``, ``counts``), present or not."""
    from metanmt.eval.diagnostics import MIN_GAP

    gaps = mean_gaps(evaluations, systems)
    blocks = [_pair_block(tables, pair, gaps) for pair in pairs]
    return {"min_gap": MIN_GAP, "alpha": ALPHA, "source_gap": gaps, **blocks[0],
            "pairs": [b for b in blocks if set(b["pair"]) <= set(systems)]}
