"""The experiment report: BLEU against fine-tuning size, MetaNMT vs MultiNMT (Gu et al., 2018, figure 3).

Every result JSON written by :func:`metanmt.eval.evaluate.evaluate_model` under a runs directory is
collected and grouped by (language, split, system, fine-tuning tokens); scores are averaged over the
fine-tuning draws. For each compared pair (:data:`PAIRS`: MetaNMT vs MultiNMT, the paper's claim, then
every other system vs the MultiNMT baseline) and each cell where both were evaluated, sacrebleu's paired
bootstrap compares the two draw by draw on the saved hypotheses. The report opens with the verdict those
numbers support (:mod:`metanmt.eval.verdict`), then each trained model's scores on its own training languages,
sample translations, and one table per held-out language and split; validation languages (the fine-tuning
settings were chosen on them) get tables of their own, outside the verdict. Partial results are reported as
they are: missing cells show as "–". Paths in the report are relative to its directory.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metanmt.atomic import atomic_path, write_text_atomic
from metanmt.errors import MetaNMTError
from metanmt.eval.evaluate import RESULT_KEYS
from metanmt.train.config import SYSTEMS

log = logging.getLogger(__name__)

SYSTEM_NAMES = SYSTEMS
MAIN_PAIR = META, MULTI = "metanmt", "multinmt"  # the claim of Gu et al. (2018); MultiNMT is the baseline
# the pairs compared, the main one first: every other system is compared with the baseline the same way
PAIRS = [MAIN_PAIR, *((system, MULTI) for system in SYSTEM_NAMES if system not in MAIN_PAIR)]
IN_DOMAIN_SPLIT = "test"
TRAINING_SPLIT = "dev"  # the pipeline scores each trained model on its training languages' dev sets
TRAIN_GROUP, VALID_GROUP = "train", "valid"  # language groups of the prepared data's task split
SAMPLE_SENTENCES = 5
PLOT_FILE = "bleu_vs_size.png"
MISSING = "–"


def system_name(system: str) -> str:
    """Display name of a system id ("metanmt" -> "MetaNMT"); unknown ids are shown as they are."""
    return SYSTEM_NAMES.get(system, system)


@dataclass(frozen=True)
class Evaluation:
    """One result JSON, its grouping keys, and where it lies (its hypotheses/references sit beside it)."""

    path: Path
    result: dict[str, Any]
    lang: str
    split: str
    system: str
    tokens: int  # fine-tuning size; a model without fine-tuning provenance counts as zero-shot
    draw: int | None
    bleu: float
    chrf: float
    gap: float | None  # source gap in nats per token; None for results from before it was measured
    group: str | None = None  # the language's role (train/valid/test); None in results older than it

    @classmethod
    def from_result(cls, path: Path, result: dict[str, Any]) -> Evaluation:
        """Read the grouping keys; a malformed value raises ValueError naming it."""
        info = result["model_info"]
        try:
            draw, gap = info.get("draw"), result.get("source_gap")
            return cls(path, result, lang=str(result["lang"]), split=str(result["split"]),
                       system=str(info.get("system") or "unknown"),
                       # a trained (not fine-tuned) checkpoint records its training tokens: zero-shot
                       tokens=int(info.get("tokens") or 0) if "base_model" in info else 0,
                       draw=None if draw is None else int(draw), bleu=float(result["bleu"]),
                       chrf=float(result["chrf"]), gap=None if gap is None else float(gap["gap"]),
                       group=None if result.get("group") is None else str(result["group"]))
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"malformed result ({type(err).__name__}: {err})") from None

    @property
    def on_training_language(self) -> bool:
        """A trained model on its own training language's dev set (``train_dev.json``): kept apart from
        the few-shot results, which are about held-out languages."""
        return self.split == TRAINING_SPLIT and self.tokens == 0 and self.group in (None, TRAIN_GROUP)

    @property
    def on_validation_language(self) -> bool:
        """A result on a validation language (settings were chosen on it: no evidence for the verdict)."""
        return self.group == VALID_GROUP

    def lines(self, key: str) -> list[str]:
        """The saved ``"hypotheses"``, ``"references"`` or ``"sources"`` (file names in the result)."""
        path = self.path.parent / self.result[key]
        return path.read_text(encoding="utf-8").splitlines()


def find_evaluations(runs_dir: str | Path) -> list[Evaluation]:
    """All result JSONs under ``runs_dir`` (recursively, sorted by path).

    Other JSON files (checkpoint configs, the report itself) lack the result keys and are ignored;
    unreadable JSON files are skipped with a warning so one broken file does not hide the rest.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise MetaNMTError(f"runs directory not found: {runs_dir}")
    found = []
    for path in sorted(runs_dir.rglob("*.json")):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            log.warning("skipping %s: %s", path, err)
            continue
        if not (isinstance(result, dict) and all(k in result for k in RESULT_KEYS)):
            continue
        try:
            found.append(Evaluation.from_result(path, result))
        except ValueError as err:
            log.warning("skipping %s: %s", path, err)
    return found


@dataclass
class _Build:
    """What the steps of :func:`build_report` share: the bootstrap size, the warnings, the path base."""

    n_bootstrap: int
    base: str | Path | None  # paths are shown relative to it (the report's directory), absolute when None
    warnings: list[str] = field(default_factory=list)

    def shown(self, path: str | Path) -> str:
        """``path`` as the report shows it: no absolute path of this machine once a base is set."""
        return str(path) if self.base is None else os.path.relpath(path, self.base)

    def os_error(self, err: OSError) -> str:
        """An OSError's message with its file name shown relative to the base."""
        return f"{err.strerror}: {self.shown(err.filename)}" if err.filename else str(err)


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation over draws (None for a single draw)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _mean_or_none(values: list[float | None]) -> float | None:
    """Mean of the measured values (None when none was measured, e.g. source gaps of older results)."""
    measured = [v for v in values if v is not None]
    return statistics.fmean(measured) if measured else None


def _pair_draw(first: Evaluation, second: Evaluation, ctx: _Build) -> dict[str, Any]:
    """Paired bootstrap of one draw's outputs, ``first`` against the baseline ``second`` (or why it could
    not run); scores are keyed by system id (``metanmt_bleu``, ``multinmt_bleu``, ...)."""
    from metanmt.eval.metrics import paired_bootstrap

    try:
        hyps, baseline_hyps = first.lines("hypotheses"), second.lines("hypotheses")
        refs, baseline_refs = first.lines("references"), second.lines("references")
    except OSError as err:
        return {"draw": first.draw, "skipped": f"cannot read saved outputs: {ctx.os_error(err)}"}
    if refs != baseline_refs:
        return {"draw": first.draw,
                "skipped": f"references differ: {ctx.shown(first.path)} vs {ctx.shown(second.path)}"}
    try:
        test = paired_bootstrap(baseline_hyps, hyps, refs, n_samples=ctx.n_bootstrap)
    except ValueError as err:  # hypotheses and references of different lengths
        return {"draw": first.draw, "skipped": f"{ctx.shown(first.path)} / {ctx.shown(second.path)}: {err}"}
    a, b = first.system, second.system
    return {
        "draw": first.draw, f"{a}_bleu": test.system_bleu, f"{b}_bleu": test.baseline_bleu,
        "bleu_p": test.bleu_p, f"{a}_chrf": test.system_chrf, f"{b}_chrf": test.baseline_chrf,
        "chrf_p": test.chrf_p, "signature": test.signature,
    }


def _system_order(system: str) -> tuple[int, str]:
    order = list(SYSTEM_NAMES)
    return (order.index(system), "") if system in order else (len(order), system)


def _draw_order(draw: int | None) -> tuple[bool, int]:
    return (draw is not None, draw or 0)


def _dedupe(evaluations: list[Evaluation], ctx: _Build) -> list[Evaluation]:
    """One evaluation per (language, split, system, size, draw): the first in path order, with a warning."""
    by_key: dict[tuple[str, str, str, int, int | None], Evaluation] = {}
    for ev in evaluations:
        key = (ev.lang, ev.split, ev.system, ev.tokens, ev.draw)
        if key in by_key:
            ctx.warnings.append(f"{ctx.shown(ev.path)} duplicates {ctx.shown(by_key[key].path)} (same "
                                f"language, split, system, size and draw); kept the first")
            continue
        by_key[key] = ev
    return list(by_key.values())


def _row(system: str, tokens: int, evs: list[Evaluation], ctx: _Build) -> dict[str, Any]:
    """One (system, size) cell of a table: per-draw scores and source gaps, their means and stds."""
    evs = sorted(evs, key=lambda e: _draw_order(e.draw))
    bleu, chrf, gaps = [e.bleu for e in evs], [e.chrf for e in evs], [e.gap for e in evs]
    (bleu_mean, bleu_std), (chrf_mean, chrf_std) = _mean_std(bleu), _mean_std(chrf)
    return {
        "system": system, "name": system_name(system), "tokens": tokens, "n": len(evs),
        "draws": [e.draw for e in evs], "bleu": bleu, "chrf": chrf,
        "bleu_mean": bleu_mean, "bleu_std": bleu_std, "chrf_mean": chrf_mean, "chrf_std": chrf_std,
        "source_gap": gaps, "source_gap_mean": _mean_or_none(gaps),
        "files": [ctx.shown(e.path) for e in evs],
    }


def _test(cells: dict[tuple[str, int], list[Evaluation]], pair: tuple[str, str], tokens: int, where: str,
          ctx: _Build) -> dict[str, Any] | None:
    """The paired bootstrap of ``pair`` = (system, baseline) at one size, draw by draw (None: nothing to
    pair)."""
    first, second = ({e.draw: e for e in cells.get((system, tokens), [])} for system in pair)
    common = sorted(first.keys() & second.keys(), key=_draw_order)
    if not common:
        return None
    draws = [_pair_draw(first[d], second[d], ctx) for d in common]
    vs = f"{system_name(pair[0])} vs {system_name(pair[1])}"
    ctx.warnings += [f"{where}, {tokens} tokens, draw {d['draw']}: no paired test, {d['skipped']} ({vs})"
                     for d in draws if "skipped" in d]
    done = [d for d in draws if "skipped" not in d]
    return {
        "pair": list(pair), "tokens": tokens, "draws": draws,
        "bleu_p_max": max((d["bleu_p"] for d in done), default=None),
        "chrf_p_max": max((d["chrf_p"] for d in done), default=None),
    }


def _tables(evaluations: list[Evaluation], ctx: _Build) -> list[dict[str, Any]]:
    """One table per (language, split), per language with the in-domain split first."""
    grouped: dict[tuple[str, str], dict[tuple[str, int], list[Evaluation]]] = defaultdict(
        lambda: defaultdict(list))
    for ev in evaluations:
        grouped[(ev.lang, ev.split)][(ev.system, ev.tokens)].append(ev)
    tables = []
    for lang, split in sorted(grouped, key=lambda ls: (ls[0], ls[1] != IN_DOMAIN_SPLIT, ls[1])):
        cells = grouped[(lang, split)]
        sizes = sorted({0} | {tokens for _, tokens in cells})
        systems = sorted({system for system, _ in cells}, key=_system_order)
        rows = [_row(s, t, cells[(s, t)], ctx) for s in systems for t in sizes if (s, t) in cells]
        where = f"{lang}/{split}"
        tests = [test for pair in PAIRS for t in sizes if (test := _test(cells, pair, t, where, ctx))]
        tables.append({"lang": lang, "split": split, "tokens": sizes, "systems": systems, "cells": rows,
                       "tests": tests})
    return tables


def _mean_scores(scores: list[dict[str, float | None]]) -> dict[str, Any]:
    """Means of BLEU, chrF and source gap over ``scores`` (the gap over those that measured one)."""
    return {**{k: _mean_or_none([s[k] for s in scores]) for k in ("bleu", "chrf", "source_gap")},
            "n": len(scores)}


def _training_languages(evaluations: list[Evaluation]) -> dict[str, Any]:
    """Each trained model on its own training languages (dev split, no fine-tuning), with means over them."""
    by_lang: dict[str, dict[str, list[Evaluation]]] = defaultdict(lambda: defaultdict(list))
    for ev in evaluations:
        by_lang[ev.lang][ev.system].append(ev)
    systems = sorted({e.system for e in evaluations}, key=_system_order)
    rows = [{"lang": lang, "scores": {
                s: _mean_scores([{"bleu": e.bleu, "chrf": e.chrf, "source_gap": e.gap} for e in evs])
                for s, evs in sorted(by_lang[lang].items(), key=lambda item: _system_order(item[0]))}}
            for lang in sorted(by_lang)]
    mean = {s: _mean_scores([r["scores"][s] for r in rows if s in r["scores"]]) for s in systems}
    return {"systems": systems, "rows": rows, "mean": mean}


def _sample_set(evaluations: list[Evaluation]) -> list[Evaluation]:
    """The in-domain test evaluations of the systems shown as samples: of the (language, size, draw) that
    most systems (at least two) have, the first language by code, its largest size, its first draw."""
    found: dict[tuple[str, int, int | None], list[Evaluation]] = defaultdict(list)
    for e in evaluations:
        if e.split == IN_DOMAIN_SPLIT:
            found[(e.lang, e.tokens, e.draw)].append(e)
    shared = [key for key, evs in found.items() if len(evs) > 1]
    if not shared:
        return []
    key = min(shared, key=lambda ltd: (-len(found[ltd]), ltd[0], -ltd[1], _draw_order(ltd[2])))
    return sorted(found[key], key=lambda e: _system_order(e.system))


def _samples(evaluations: list[Evaluation], ctx: _Build) -> dict[str, Any] | None:
    """The first sentences of one held-out test set translated by every system: the scores as text."""
    if not (shown := _sample_set(evaluations)):
        return None
    first = shown[0]
    try:
        columns = {"reference": first.lines("references"), **{e.system: e.lines("hypotheses") for e in shown}}
    except OSError:  # lost outputs: no samples; the paired tests of this draw warn about them
        return None
    try:
        columns = {"source": first.lines("sources") if first.result.get("sources") else [], **columns}
    except OSError as err:
        ctx.warnings.append(f"sample translations without sources: {ctx.os_error(err)}")
        columns = {"source": [], **columns}
    n = min(SAMPLE_SENTENCES, len(columns["reference"]))
    return {"lang": first.lang, "split": first.split, "tokens": first.tokens, "draw": first.draw,
            "systems": [e.system for e in shown],
            "sentences": [{k: lines[i] if i < len(lines) else None for k, lines in columns.items()}
                          for i in range(n)]}


def build_report(evaluations: list[Evaluation], n_bootstrap: int = 1000,
                 output_dir: str | Path | None = None) -> dict[str, Any]:
    """The verdict, the training-language scores, sample translations and one table per held-out
    (language, split) with means, stds and p-values; paths relative to ``output_dir`` when given."""
    from metanmt.eval.verdict import build_verdict

    ctx = _Build(n_bootstrap, output_dir)
    kept = _dedupe(evaluations, ctx)
    held_out = [e for e in kept if not (e.on_training_language or e.on_validation_language)]
    tables = _tables(held_out, ctx)
    systems = sorted({e.system for e in kept}, key=_system_order)
    in_domain_first = sorted(tables, key=lambda t: t["split"] != IN_DOMAIN_SPLIT)
    return {
        "num_evaluations": len(kept),
        "systems": {s: system_name(s) for s in systems},
        "verdict": build_verdict(kept, in_domain_first, systems, PAIRS),
        "training_languages": _training_languages([e for e in kept if e.on_training_language]),
        "samples": _samples(held_out, ctx),
        "bleu_signatures": sorted({e.result["bleu_signature"] for e in kept}),
        "chrf_signatures": sorted({e.result["chrf_signature"] for e in kept}),
        "bootstrap_signatures": sorted({d["signature"] for t in tables for test in t["tests"]
                                        for d in test["draws"] if "signature" in d}),
        "n_bootstrap": n_bootstrap,
        "decoding": [{"beam": beam, "length_penalty": lp}
                     for beam, lp in sorted({(e.result["beam"], e.result["length_penalty"]) for e in kept},
                                            key=str)],
        "tables": tables,
        "validation_tables": _tables([e for e in kept if e.on_validation_language], ctx),
        "warnings": ctx.warnings,
    }


def _short_size(tokens: int) -> str:
    """Axis label of a token count: 0, 4k, 16k, 1.2M."""
    for factor, suffix in ((1_000_000, "M"), (1_000, "k")):
        if tokens >= factor:
            return f"{tokens / factor:.3g}{suffix}"
    return str(tokens)


def _lang_title(code: str) -> str:
    """``fi (Finnish)`` for registry codes, the bare code otherwise."""
    from metanmt.data.languages import LANGUAGES

    entry = LANGUAGES.get(code)
    return f"{code} ({entry.name})" if entry else code


def _fmt_score(mean: float, std: float | None) -> str:
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def _fmt_size(tokens: int) -> str:
    return "0 (zero-shot)" if tokens == 0 else f"{tokens:,}"


def _markdown_table(table: dict[str, Any], metric: str) -> list[str]:
    """Rows = systems, columns = fine-tuning sizes; then a row of paired-bootstrap p-values per pair."""
    sizes = table["tokens"]
    cell = {(c["system"], c["tokens"]): c for c in table["cells"]}
    lines = [
        "| System | " + " | ".join(_fmt_size(t) for t in sizes) + " |",
        "| --- | " + " | ".join("---:" for _ in sizes) + " |",
    ]
    for system in table["systems"]:
        values = [
            _fmt_score(c[f"{metric}_mean"], c[f"{metric}_std"]) if (c := cell.get((system, t))) else MISSING
            for t in sizes
        ]
        lines.append(f"| {system_name(system)} | " + " | ".join(values) + " |")
    p_by_pair: dict[tuple[str, ...], dict[int, float | None]] = defaultdict(dict)  # in PAIRS order
    for test in table["tests"]:
        p_by_pair[tuple(test["pair"])][test["tokens"]] = test[f"{metric}_p_max"]
    for pair, p_by_size in p_by_pair.items():
        values = [MISSING if p_by_size.get(t) is None else f"{p_by_size[t]:.3f}" for t in sizes]
        lines.append(f"| p ({_vs(pair)}) | " + " | ".join(values) + " |")
    return lines


def _vs(pair: Sequence[str]) -> str:
    """``MetaNMT vs MultiNMT``."""
    return " vs ".join(system_name(s) for s in pair)


def _fmt_value(value: float | None, key: str) -> str:
    """A score with one decimal, a source gap with two, MISSING when not measured."""
    return MISSING if value is None else f"{value:.2f}" if key == "source_gap" else f"{value:.1f}"


def _decision(comparison: dict[str, Any], pair: Sequence[str]) -> str:
    """A verdict cell: who is better, then the two mean BLEUs in the order of ``pair``."""
    if not comparison["tested"]:
        return "not tested"
    winner = comparison["winner"]
    label = f"{system_name(winner)} better" if winner else "no significant difference"
    return f"{label} ({comparison[f'{pair[0]}_bleu']:.1f} vs {comparison[f'{pair[1]}_bleu']:.1f})"


def _counts_line(block: dict[str, Any]) -> str:
    """How many cells each system of a verdict block wins."""
    (first, second), counts = block["pair"], block["counts"]
    untested = f", not tested in {counts['not_tested']}" if counts["not_tested"] else ""
    return (f"{system_name(first)} better in {counts[first]} of {counts['cells']} cells, "
            f"{system_name(second)} better in {counts[second]}, "
            f"no significant difference in {counts['no_difference']}{untested}.")


def _decisions_table(block: dict[str, Any]) -> list[str]:
    """A verdict block's decisions: rows (language, split), in-domain splits first; columns sizes."""
    comparisons = block["comparisons"]
    sizes = sorted({c["tokens"] for c in comparisons})
    rows: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for c in comparisons:
        rows[(c["lang"], c["split"])][c["tokens"]] = _decision(c, block["pair"])
    return [
        "| Language · split | " + " | ".join(_fmt_size(t) for t in sizes) + " |",
        "| --- | " + " | ".join("---" for _ in sizes) + " |",
        *[f"| {_lang_title(lang)} · {split} | " + " | ".join(cells.get(t, MISSING) for t in sizes) + " |"
          for (lang, split), cells in rows.items()],
    ]


def _neither_note(block: dict[str, Any], min_gap: float) -> list[str]:
    """The warning that a pair's comparison means nothing, when neither of its systems uses its source."""
    if not block["neither_learned"]:
        return []
    return ["", (f"**Neither system has learned to translate** (both source gaps < {min_gap} nats): the "
                 f"{_vs(block['pair'])} comparison below means nothing.")]


def _comparison_markdown(verdict: dict[str, Any]) -> list[str]:
    """The main pair: the count line, how a cell is decided, then the table of decisions."""
    if not verdict["comparisons"]:
        names = " and ".join(map(system_name, verdict["pair"]))
        return [f"No held-out cell has both {names} evaluations: nothing to compare."]
    return [
        _counts_line(verdict), "",
        (f"A system is better only if its mean BLEU is higher and it is ahead with paired-bootstrap "
         f"p < {verdict['alpha']} on every fine-tuning draw. Cells: the decision ({_vs(verdict['pair'])} "
         "BLEU, means over draws; the same for each pair below)."),
        "", *_decisions_table(verdict),
    ]


def _other_pairs_markdown(verdict: dict[str, Any]) -> list[str]:
    """Every other compared pair (a system vs the baseline): its count line, then its decisions."""
    out = []
    for block in verdict.get("pairs", []):
        if block["pair"] == verdict["pair"]:
            continue
        title = f"**{_vs(block['pair'])}**"
        if not block["comparisons"]:
            out += ["", f"{title}: no held-out cell has both evaluations: nothing to compare."]
            continue
        out += ["", f"{title}: {_counts_line(block)}", *_neither_note(block, verdict["min_gap"]),
                "", *_decisions_table(block)]
    return out


def _verdict_markdown(verdict: dict[str, Any]) -> list[str]:
    """The opening section: has each system learned to translate, and who is better in each held-out cell,
    the main pair first."""
    from metanmt.eval.diagnostics import verdict_line

    out = ["## Verdict", ""]
    for system, gap in verdict["source_gap"].items():
        mean = (f" Mean over its {gap['n']} training-language dev evaluations." if gap["basis"] == "dev"
                else f" Mean over all {gap['n']} of its evaluations (none on a training language's dev set).")
        out.append(f"- {verdict_line(system_name(system), gap['gap'])}{mean if gap['n'] else ''}")
    if not verdict["source_gap"]:
        out.append("No evaluation results found.")
    out += _neither_note(verdict, verdict["min_gap"])
    return out + ["", *_comparison_markdown(verdict), *_other_pairs_markdown(verdict), ""]


USABLE_BLEU = 10.0  # below it on its own training languages, a system translates too poorly to settle much


def _quality_markdown(training: dict[str, Any]) -> list[str]:
    """How well the trained systems translate at all: mean beam-search BLEU over the training languages."""
    means = {s: m["bleu"] for s, m in training["mean"].items() if m["bleu"] is not None}
    if not means:
        return []
    listed = ", ".join(f"{system_name(s)} {b:.1f}" for s, b in means.items())
    line = f"Mean dev BLEU over the training languages (no fine-tuning): {listed}."
    if max(means.values()) < USABLE_BLEU:
        line += (f" Below {USABLE_BLEU:.0f} for every system: these models translate poorly, so read the "
                 "comparison as one between weak systems.")
    return [line, ""]


def _training_markdown(training: dict[str, Any]) -> list[str]:
    """One row per training language, a column per (metric, system), and the mean over languages."""
    if not training["rows"]:
        return []
    metrics = (("bleu", "BLEU"), ("chrf", "chrF"), ("source_gap", "source gap"))
    columns = [(s, key, label) for key, label in metrics for s in training["systems"]]
    mean = training["mean"]
    counts = {system_name(s): m["n"] for s, m in mean.items()}
    out = [
        "## Training languages", "",
        ("Each trained model, without fine-tuning, on the dev split of its training languages (beam search). "
         "MetaNMT's parameters are an initialisation meant to be adapted before use, so its unadapted "
         "scores here understate it. Source gap in nats per target token."), "",
        "| Language | " + " | ".join(f"{system_name(s)} {label}" for s, _, label in columns) + " |",
        "| --- | " + " | ".join("---:" for _ in columns) + " |",
        *[f"| {_lang_title(row['lang'])} | "
          + " | ".join(_fmt_value(row["scores"].get(s, {}).get(key), key) for s, key, _ in columns) + " |"
          for row in training["rows"]],
        "| **Mean** | " + " | ".join(_fmt_value(mean[s][key], key) for s, key, _ in columns) + " |",
    ]
    if len(set(counts.values())) > 1:
        out += ["", "Means are over each system's own languages: "
                + ", ".join(f"{name} {n}" for name, n in counts.items()) + "."]
    return out + [""]


def _samples_markdown(samples: dict[str, Any] | None) -> list[str]:
    """Source, reference and every shown system's hypothesis of the sample sentences."""
    if not samples:
        return []
    labels = {"source": "Source", "reference": "Reference", **{s: system_name(s) for s in samples["systems"]}}
    size, draw = _fmt_size(samples["tokens"]), samples["draw"]
    out = ["## Sample translations", "",
           (f"The first {len(samples['sentences'])} sentences of {_lang_title(samples['lang'])} · "
            f"{samples['split']}, fine-tuned on {size} tokens, draw {draw}."), ""]
    for i, sentence in enumerate(samples["sentences"], 1):
        out += [f"**{i}.**", "", *[f"- {label}: {MISSING if sentence[key] is None else sentence[key]}"
                                   for key, label in labels.items()], ""]
    return out


def _gap_markdown(table: dict[str, Any]) -> list[str]:
    """A compact line of source gaps per system, in the tables' size order (nothing if none measured)."""
    gap = {(c["system"], c["tokens"]): c["source_gap_mean"] for c in table["cells"]}
    sizes = table["tokens"]
    if all(g is None for g in gap.values()):
        return []
    parts = [f"{system_name(s)} " + " · ".join(_fmt_value(gap.get((s, t)), "source_gap") for t in sizes)
             for s in table["systems"]]
    return [f"Source gap (nats per token, mean over draws; sizes as in the columns): {'; '.join(parts)}.", ""]


def _held_out_markdown(report: dict[str, Any], plot: str | None) -> list[str]:
    """One BLEU and one chrF table per held-out (language, split), with the plot."""
    out = [
        "## Held-out languages", "",
        ("Columns are fine-tuning sizes in tokens (0 = zero-shot). Cells are the score's mean ± sample "
         f"standard deviation over fine-tuning draws (no ± for a single draw); {MISSING} = not evaluated."),
        ("p: sacrebleu paired bootstrap resampling "
         f"({report['n_bootstrap']} resamples) of each compared pair (rows \"p (… vs MultiNMT)\") on the "
         "same draw and references; the largest p over draws."),
        "",
    ]
    out += _finetune_lr_markdown(report.get("finetune_lr") or {})
    if plot:
        out += [f"![BLEU against fine-tuning tokens]({plot})", ""]
    if not report["tables"]:
        out += ["No held-out evaluation results found.", ""]
    return out + _tables_markdown(report["tables"])


def _tables_markdown(tables: list[dict[str, Any]]) -> list[str]:
    """A BLEU and a chrF table per (language, split), with source gaps and draws."""
    out = []
    for table in tables:
        draws = sorted({c["n"] for c in table["cells"]})
        out += [f"### {_lang_title(table['lang'])} · {table['split']}", ""]
        for metric, label in (("bleu", "BLEU"), ("chrf", "chrF")):
            out += [f"**{label}**", "", *_markdown_table(table, metric), ""]
        out += _gap_markdown(table)
        out += [f"Draws per cell: {', '.join(map(str, draws))}.", ""]
    return out


def _validation_markdown(tables: list[dict[str, Any]]) -> list[str]:
    """The validation languages' tables, apart: the fine-tuning rate (and any tuning) was chosen on them."""
    if not tables:
        return []
    langs = ", ".join(sorted({t["lang"] for t in tables}))
    return ["## Validation languages", "",
            (f"{langs}: the fine-tuning settings were chosen on these languages, so they are no evidence "
             "for either system and are kept out of the verdict. Tables as above."), "",
            *_tables_markdown(tables)]


def read_finetune_lrs(runs_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Each system's fine-tuning learning rate as chosen on the validation languages
    (``<runs_dir>/<system>/finetune_lr.json``, written by metanmt.train.validation)."""
    return {path.parent.name: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(Path(runs_dir).glob("*/finetune_lr.json"))}


def _finetune_lr_markdown(choices: dict[str, dict[str, Any]]) -> list[str]:
    if not choices:
        return []
    out = []
    for system, c in sorted(choices.items(), key=lambda kv: _system_order(kv[0])):
        tried = ", ".join(f"{lr} ({s['chrf_mean']:.1f} / {s['mean']:.2f})" for lr, s in c["scores"].items())
        out.append(f"- {system_name(system)}: lr {c['lr']}; tried (mean validation chrF / BLEU after "
                   f"{c['tokens']:,} tokens of {', '.join(c['langs'])}): {tried}")
    return ["Fine-tuning learning rate, chosen per system on the validation languages:", "", *out, ""]


def _signatures_markdown(report: dict[str, Any]) -> list[str]:
    """Metric and bootstrap signatures, decoding settings, and the warnings."""
    out = ["## Signatures", ""]
    out += [f"- BLEU: `{s}`" for s in report["bleu_signatures"]]
    out += [f"- chrF: `{s}`" for s in report["chrf_signatures"]]
    out += [f"- paired bootstrap: `{s}`" for s in report["bootstrap_signatures"]]
    out += [f"- decoding: beam {d['beam']}, length penalty {d['length_penalty']}" for d in report["decoding"]]
    if len(report["bleu_signatures"]) > 1 or len(report["decoding"]) > 1:
        out += ["", ("**Warning**: the evaluations do not all share one setting; "
                "scores may not be comparable.")]
    if report["warnings"]:
        out += ["", "## Warnings", "", *[f"- {w}" for w in report["warnings"]]]
    return out


def _curves_markdown(curves: dict[str, list[dict[str, Any]]], plot: str | None) -> list[str]:
    """The last in-training validation of each system (BLEU after adaptation to ro/lv, source gap)."""
    if not any(curves.values()):
        return []
    out = ["## Training", "", "| System | target tokens | validation BLEU | source gap |",
           "| --- | ---: | ---: | ---: |"]
    for system, records in curves.items():
        if records:
            last = records[-1]
            gap = "–" if last["source_gap"] is None else f"{last['source_gap']:.2f}"
            out.append(f"| {system_name(system)} | {last['tokens']:,} | {last['valid_bleu']:.2f} | {gap} |")
    figure = [f"![Validation BLEU and source gap against target tokens]({plot})", ""] if plot else []
    return out + ["", *figure]


def render_markdown(report: dict[str, Any], runs_dir: str | Path, plot: str | None) -> str:
    """The human-readable report, the verdict first so that no one reads a table without it."""
    out = [
        "# Few-shot NMT: MetaNMT vs MultiNMT against fine-tuning size",
        "",
        f"{report['num_evaluations']} evaluations collected from `{runs_dir}`.",
        "",
        *_verdict_markdown(report["verdict"]),
        *_quality_markdown(report["training_languages"]),
        *_curves_markdown(report.get("training_curves") or {}, report.get("curves_plot")),
        *_training_markdown(report["training_languages"]),
        *_samples_markdown(report["samples"]),
        *_held_out_markdown(report, plot),
        *_validation_markdown(report.get("validation_tables") or []),
        *_signatures_markdown(report),
    ]
    return "\n".join(out) + "\n"


def _plotted_tables(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One table per held-out language: its in-domain split, or its first evaluation split."""
    first: dict[str, dict[str, Any]] = {}
    for table in report["tables"]:  # ordered per language with the in-domain split first
        if table["cells"]:
            first.setdefault(table["lang"], table)
    return list(first.values())


def _draw_bleu_panel(ax: Any, table: dict[str, Any], colors: dict[str, str]) -> None:
    """One language's panel: BLEU mean ± std against fine-tuning tokens, a line per system."""
    for system in table["systems"]:
        cells = sorted((c for c in table["cells"] if c["system"] == system), key=lambda c: c["tokens"])
        ax.errorbar(
            [c["tokens"] for c in cells], [c["bleu_mean"] for c in cells],
            yerr=[c["bleu_std"] or 0.0 for c in cells], marker="o", capsize=3, color=colors[system],
            label=system_name(system),
        )
    positive = [t for t in table["tokens"] if t > 0]
    ax.set_xscale("symlog", linthresh=min(positive) if positive else 1)
    ax.set_xticks(table["tokens"], labels=[_short_size(t) for t in table["tokens"]])
    ax.minorticks_off()
    split = "" if table["split"] == IN_DOMAIN_SPLIT else f" ({table['split']})"
    ax.set_title(_lang_title(table["lang"]) + split)
    ax.set_xlabel("fine-tuning tokens")
    ax.set_ylabel("BLEU")
    ax.grid(True, alpha=0.3)
    ax.legend()


def plot_bleu_vs_size(report: dict[str, Any], path: str | Path) -> bool:
    """BLEU (mean ± std) against fine-tuning tokens, one line per system and one panel per held-out language.

    Uses each language's in-domain split, or its first evaluation split when it has none (e.g. the
    official WMT test sets of the paper recipe). Returns False (and writes nothing) when there is
    nothing to plot.
    The x axis is symmetric-log so the zero-shot point (0 tokens) sits beside sizes spanning decades.
    """
    from matplotlib.figure import Figure

    tables = _plotted_tables(report)
    if not tables:
        return False
    ncols = min(len(tables), 3)
    nrows = -(-len(tables) // ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    systems = sorted({s for t in tables for s in t["systems"]}, key=_system_order)
    colors = {system: f"C{i}" for i, system in enumerate(systems)}  # one colour per system in every panel
    for ax, table in zip(axes, tables, strict=False):  # more axes than tables: the grid's spare cells
        _draw_bleu_panel(ax, table, colors)
    for ax in axes[len(tables):]:
        ax.set_visible(False)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return True


def write_report(runs_dir: str | Path, output_dir: str | Path, n_bootstrap: int = 1000,
                 train_runs: list[str | Path] | None = None) -> dict[str, Any]:
    """Collect the evaluations under ``runs_dir`` and write report.json, report.md and the plots.

    ``train_runs`` (training run directories) add the learning curves of the trained systems.
    Paths in the report are relative to ``output_dir``, so it can be moved together with the runs."""
    from metanmt.eval.curves import CURVES_FILE, plot_training_curves, read_training_runs

    output_dir = Path(output_dir)
    report = build_report(find_evaluations(runs_dir), n_bootstrap=n_bootstrap, output_dir=output_dir)
    plot = PLOT_FILE if plot_bleu_vs_size(report, output_dir / PLOT_FILE) else None
    if plot is None:  # do not leave a plot of earlier results beside the new report
        (output_dir / PLOT_FILE).unlink(missing_ok=True)
    curves = read_training_runs(train_runs or [])
    plotted = plot_training_curves(curves, output_dir / CURVES_FILE, SYSTEM_NAMES)
    curves_plot = CURVES_FILE if plotted else None
    runs = os.path.relpath(runs_dir, output_dir)
    report = {"runs_dir": runs, "plot": plot, "training_curves": curves, "curves_plot": curves_plot,
              "finetune_lr": read_finetune_lrs(runs_dir), **report}
    write_text_atomic(output_dir / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(output_dir / "report.md", render_markdown(report, runs, plot))
    return report
