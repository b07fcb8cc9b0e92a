"""The experiment report: BLEU against fine-tuning size, MetaNMT vs MultiNMT (Gu et al., 2018, figure 3).

Every result JSON written by :func:`metanmt.eval.evaluate.evaluate_model` under a runs directory is
collected and grouped by (language, split, system, fine-tuning tokens); scores are averaged over the
fine-tuning draws. For each cell where both systems were evaluated, sacrebleu's paired bootstrap compares
MetaNMT with MultiNMT draw by draw on the saved hypotheses. Partial results are reported as they are:
missing cells show as "–".
"""

from __future__ import annotations

import json
import logging
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metanmt.errors import MetaNMTError
from metanmt.eval.evaluate import RESULT_KEYS
from metanmt.eval.files import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

META, MULTI = "metanmt", "multinmt"
SYSTEM_NAMES = {META: "MetaNMT", MULTI: "MultiNMT"}
IN_DOMAIN_SPLIT = "test"
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

    @classmethod
    def from_result(cls, path: Path, result: dict[str, Any]) -> Evaluation:
        """Read the grouping keys; a malformed value raises ValueError naming it."""
        info = result["model_info"]
        try:
            draw = info.get("draw")
            return cls(path, result, lang=str(result["lang"]), split=str(result["split"]),
                       system=str(info.get("system") or "unknown"), tokens=int(info.get("tokens") or 0),
                       draw=None if draw is None else int(draw), bleu=float(result["bleu"]),
                       chrf=float(result["chrf"]))
        except (AttributeError, TypeError, ValueError) as err:
            raise ValueError(f"malformed result ({type(err).__name__}: {err})") from None

    def lines(self, key: str) -> list[str]:
        """The saved hypotheses (``key="hypotheses"``) or references (``key="references"``)."""
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


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation over draws (None for a single draw)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _pair_draw(meta: Evaluation, multi: Evaluation, n_bootstrap: int) -> dict[str, Any]:
    """Paired bootstrap of one draw's MetaNMT vs MultiNMT outputs (or why it could not run)."""
    from metanmt.eval.metrics import paired_bootstrap

    try:
        meta_hyps, multi_hyps = meta.lines("hypotheses"), multi.lines("hypotheses")
        refs, multi_refs = meta.lines("references"), multi.lines("references")
    except OSError as err:
        return {"draw": meta.draw, "skipped": f"cannot read saved outputs: {err}"}
    if refs != multi_refs:
        return {"draw": meta.draw, "skipped": f"references differ: {meta.path} vs {multi.path}"}
    try:
        test = paired_bootstrap(multi_hyps, meta_hyps, refs, n_samples=n_bootstrap)
    except ValueError as err:  # hypotheses and references of different lengths
        return {"draw": meta.draw, "skipped": f"{meta.path} / {multi.path}: {err}"}
    return {
        "draw": meta.draw, "metanmt_bleu": test.system_bleu, "multinmt_bleu": test.baseline_bleu,
        "bleu_p": test.bleu_p, "metanmt_chrf": test.system_chrf, "multinmt_chrf": test.baseline_chrf,
        "chrf_p": test.chrf_p, "signature": test.signature,
    }


def _system_order(system: str) -> tuple[int, str]:
    order = list(SYSTEM_NAMES)
    return (order.index(system), "") if system in order else (len(order), system)


def _draw_order(draw: int | None) -> tuple[bool, int]:
    return (draw is not None, draw or 0)


def build_report(evaluations: list[Evaluation], n_bootstrap: int = 1000) -> dict[str, Any]:
    """Group evaluations into tables (one per language and split) with means, stds and p-values."""
    warnings: list[str] = []
    by_key: dict[tuple[str, str, str, int, int | None], Evaluation] = {}
    for ev in evaluations:
        key = (ev.lang, ev.split, ev.system, ev.tokens, ev.draw)
        if key in by_key:
            warnings.append(f"{ev.path} duplicates {by_key[key].path} (same language, split, system, "
                            f"size and draw); kept the first")
            continue
        by_key[key] = ev

    # (lang, split) -> (system, tokens) -> one evaluation per draw
    cells: dict[tuple[str, str], dict[tuple[str, int], list[Evaluation]]] = defaultdict(
        lambda: defaultdict(list))
    for (lang, split, system, tokens, _), ev in by_key.items():
        cells[(lang, split)][(system, tokens)].append(ev)

    tables = []
    for lang, split in sorted(cells, key=lambda ls: (ls[0], ls[1] != IN_DOMAIN_SPLIT, ls[1])):
        table_cells = cells[(lang, split)]
        sizes = sorted({0} | {tokens for _, tokens in table_cells})
        systems = sorted({system for system, _ in table_cells}, key=_system_order)
        rows = []
        for system in systems:
            for tokens in sizes:
                evs = sorted(table_cells.get((system, tokens), []), key=lambda e: _draw_order(e.draw))
                if not evs:
                    continue
                bleu, chrf = [e.bleu for e in evs], [e.chrf for e in evs]
                (bleu_mean, bleu_std), (chrf_mean, chrf_std) = _mean_std(bleu), _mean_std(chrf)
                rows.append({
                    "system": system, "name": system_name(system), "tokens": tokens, "n": len(evs),
                    "draws": [e.draw for e in evs], "bleu": bleu, "chrf": chrf,
                    "bleu_mean": bleu_mean, "bleu_std": bleu_std,
                    "chrf_mean": chrf_mean, "chrf_std": chrf_std,
                    "files": [str(e.path) for e in evs],
                })
        tests = []
        for tokens in sizes:
            meta = {e.draw: e for e in table_cells.get((META, tokens), [])}
            multi = {e.draw: e for e in table_cells.get((MULTI, tokens), [])}
            common = sorted(meta.keys() & multi.keys(), key=_draw_order)
            if not common:
                continue
            draws = [_pair_draw(meta[d], multi[d], n_bootstrap) for d in common]
            for d in draws:
                if "skipped" in d:
                    warnings.append(f"{lang}/{split}, {tokens} tokens, draw {d['draw']}: no paired test, "
                                    f"{d['skipped']}")
            done = [d for d in draws if "skipped" not in d]
            tests.append({
                "tokens": tokens, "draws": draws,
                "bleu_p_max": max((d["bleu_p"] for d in done), default=None),
                "chrf_p_max": max((d["chrf_p"] for d in done), default=None),
            })
        tables.append({"lang": lang, "split": split, "tokens": sizes, "systems": systems, "cells": rows,
                       "tests": tests})

    kept = list(by_key.values())
    bootstrap_sigs = sorted({d["signature"] for t in tables for test in t["tests"] for d in test["draws"]
                             if "signature" in d})
    return {
        "num_evaluations": len(kept),
        "systems": {s: system_name(s) for t in tables for s in t["systems"]},
        "bleu_signatures": sorted({e.result["bleu_signature"] for e in kept}),
        "chrf_signatures": sorted({e.result["chrf_signature"] for e in kept}),
        "bootstrap_signatures": bootstrap_sigs,
        "n_bootstrap": n_bootstrap,
        "decoding": [{"beam": beam, "length_penalty": lp}
                     for beam, lp in sorted({(e.result["beam"], e.result["length_penalty"]) for e in kept},
                                            key=str)],
        "tables": tables,
        "warnings": warnings,
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
    """Rows = systems, columns = fine-tuning sizes; the last row holds the paired-bootstrap p-values."""
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
    if table["tests"]:
        p_by_size = {test["tokens"]: test[f"{metric}_p_max"] for test in table["tests"]}
        values = [MISSING if p_by_size.get(t) is None else f"{p_by_size[t]:.3f}" for t in sizes]
        lines.append("| p (MetaNMT vs MultiNMT) | " + " | ".join(values) + " |")
    return lines


def render_markdown(report: dict[str, Any], runs_dir: str | Path, plot: str | None) -> str:
    """The human-readable report: one BLEU and one chrF table per (language, split)."""
    out = [
        "# Few-shot NMT: MetaNMT vs MultiNMT against fine-tuning size",
        "",
        f"{report['num_evaluations']} evaluations collected from `{runs_dir}`.",
        ("Columns are fine-tuning sizes in tokens (0 = zero-shot). Cells are the score's mean ± sample "
        f"standard deviation over fine-tuning draws (no ± for a single draw); {MISSING} = not evaluated."),
        ("p: sacrebleu paired bootstrap resampling "
        f"({report['n_bootstrap']} resamples) of MetaNMT against MultiNMT on the same draw and references; "
        "the largest p over draws."),
        "",
    ]
    if plot:
        out += [f"![BLEU against fine-tuning tokens]({plot})", ""]
    if not report["tables"]:
        out += ["No evaluation results found.", ""]
    for table in report["tables"]:
        draws = sorted({c["n"] for c in table["cells"]})
        out += [f"## {_lang_title(table['lang'])} · {table['split']}", ""]
        for metric, label in (("bleu", "BLEU"), ("chrf", "chrF")):
            out += [f"**{label}**", "", *_markdown_table(table, metric), ""]
        out += [f"Draws per cell: {', '.join(map(str, draws))}.", ""]
    out += ["## Signatures", ""]
    out += [f"- BLEU: `{s}`" for s in report["bleu_signatures"]]
    out += [f"- chrF: `{s}`" for s in report["chrf_signatures"]]
    out += [f"- paired bootstrap: `{s}`" for s in report["bootstrap_signatures"]]
    out += [f"- decoding: beam {d['beam']}, length penalty {d['length_penalty']}" for d in report["decoding"]]
    if len(report["bleu_signatures"]) > 1 or len(report["decoding"]) > 1:
        out += ["", ("**Warning**: the evaluations do not all share one setting; "
                "scores may not be comparable.")]
    if report["warnings"]:
        out += ["", "## Warnings", "", *[f"- {w}" for w in report["warnings"]]]
    return "\n".join(out) + "\n"


def plot_bleu_vs_size(report: dict[str, Any], path: str | Path) -> bool:
    """BLEU (mean ± std) against fine-tuning tokens, one line per system and one panel per language.

    Uses each language's in-domain split, or its first evaluation split when it has none (e.g. the
    official WMT test sets of the paper recipe). Returns False (and writes nothing) when there is
    nothing to plot.
    The x axis is symmetric-log so the zero-shot point (0 tokens) sits beside sizes spanning decades.
    """
    from matplotlib.figure import Figure

    first: dict[str, dict[str, Any]] = {}
    for table in report["tables"]:  # ordered per language with the in-domain split first
        if table["cells"]:
            first.setdefault(table["lang"], table)
    tables = list(first.values())
    if not tables:
        return False
    ncols = min(len(tables), 3)
    nrows = -(-len(tables) // ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    systems = sorted({s for t in tables for s in t["systems"]}, key=_system_order)
    colors = {system: f"C{i}" for i, system in enumerate(systems)}  # one colour per system in every panel
    for ax, table in zip(axes, tables, strict=False):  # more axes than tables: the grid's spare cells
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
    for ax in axes[len(tables):]:
        ax.set_visible(False)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return True


def write_report(runs_dir: str | Path, output_dir: str | Path, n_bootstrap: int = 1000) -> dict[str, Any]:
    """Collect the evaluations under ``runs_dir`` and write report.json, report.md and the plot."""
    output_dir = Path(output_dir)
    report = build_report(find_evaluations(runs_dir), n_bootstrap=n_bootstrap)
    plot = PLOT_FILE if plot_bleu_vs_size(report, output_dir / PLOT_FILE) else None
    if plot is None:  # do not leave a plot of earlier results beside the new report
        (output_dir / PLOT_FILE).unlink(missing_ok=True)
    report = {"runs_dir": str(runs_dir), "plot": plot, **report}
    write_text_atomic(output_dir / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(output_dir / "report.md", render_markdown(report, runs_dir, plot))
    return report
