"""Learning curves of the trained systems, read from their ``train_log.jsonl``: validation BLEU and the
source gap against target tokens, so a report shows *when* (and whether) each system started to translate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from metanmt.atomic import atomic_path
from metanmt.errors import MetaNMTError

CURVES_FILE = "training_curves.png"


def read_training_runs(run_dirs: list[str | Path]) -> dict[str, list[dict[str, Any]]]:
    """``{system: validation records}`` of training run directories (run.json + train_log.jsonl each).

    Tokens count from random weights: a run started from a metanmt checkpoint (multimeta, from MultiNMT's)
    adds the tokens that checkpoint was trained on."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for run_dir in map(Path, run_dirs):
        info, log = run_dir / "run.json", run_dir / "train_log.jsonl"
        if not (info.is_file() and log.is_file()):
            raise MetaNMTError(f"{run_dir} is not a training run directory (needs run.json and "
                               "train_log.jsonl)")
        run_info = json.loads(info.read_text(encoding="utf-8"))
        before = _tokens_before(run_info)
        records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
        runs[run_info["system"]] = [_validation(r, before) for r in records if "valid_bleu" in r]
    return runs


def _tokens_before(run_info: dict[str, Any]) -> int:
    """Target tokens of the metanmt checkpoint a run started from (``model.init_from``); 0 for random weights
    or another pretrained model."""
    init = ((run_info.get("config") or {}).get("model") or {}).get("init_from")
    made = Path(init) / "metanmt.json" if init else None
    if made is None or not made.is_file():
        return 0
    return int(json.loads(made.read_text(encoding="utf-8")).get("tokens") or 0)


def _validation(record: dict[str, Any], tokens_before: int = 0) -> dict[str, Any]:
    gap = record.get("source_gap") or {}
    return {"step": record["step"], "tokens": tokens_before + record["tokens"],
            "valid_bleu": record["valid_bleu"]["mean"],
            "valid_chrf": record["valid_bleu"].get("chrf_mean"), "source_gap": gap.get("gap")}


def plot_training_curves(runs: dict[str, list[dict[str, Any]]], path: str | Path,
                         names: dict[str, str]) -> bool:
    """Validation BLEU and source gap against target tokens, one line per system; False if nothing to plot."""
    from matplotlib.figure import Figure

    if not any(runs.values()):
        return False
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    axes = fig.subplots(1, 2)
    for system, records in runs.items():
        tokens = [r["tokens"] / 1e6 for r in records]
        axes[0].plot(tokens, [r["valid_bleu"] for r in records], marker="o", label=names.get(system, system))
        axes[1].plot(tokens, [r["source_gap"] for r in records], marker="o", label=names.get(system, system))
    for ax, label in zip(axes, ("validation BLEU (after adaptation)", "source gap (nats)"), strict=True):
        ax.set_xlabel("target tokens (millions)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return True
