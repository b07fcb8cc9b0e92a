"""The numbers of the README's layers-only section, from the committed reports, rate files and train logs.

    python benchmarks/offline_tatoeba/2026-11-27-layers/compare.py

For 15.0M and 22.8M target tokens: each MetaNMT's held-out BLEU / chrF averaged over the 18 cells and the
layers-only run's cell-by-cell difference; the ro/lv measures the choice may use (in-training validation from
15.0M tokens on, and the 4K-token fine-tune at the chosen rate).
"""

import gzip
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIPPED = {"15.0M": HERE.parent / "2026-11-27-verdict-15M", "22.8M": HERE.parent / "2026-11-27-verdict-22.8M"}
LAYERS = {"15.0M": HERE / "at15", "22.8M": HERE / "at22"}


def cells(report: Path) -> dict[tuple[str, int], tuple[float, float]]:
    """(language, fine-tuning tokens) -> MetaNMT's mean (BLEU, chrF) over the draws."""
    tables = json.loads((report / "report.json").read_text())["tables"]
    return {(t["lang"], c["tokens"]): (c["bleu_mean"], c["chrf_mean"])
            for t in tables for c in t["cells"] if c["system"] == "metanmt"}


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def held_out(budget: str) -> None:
    shipped, layers = cells(SHIPPED[budget]), cells(LAYERS[budget])
    diffs = sorted(layers[k][0] - shipped[k][0] for k in shipped)
    for name, c in (("shipped", shipped), ("layers", layers)):
        print(f"{budget} {name}: held-out BLEU / chrF, mean of {len(c)} cells "
              f"{mean([b for b, _ in c.values()]):.2f} / {mean([f for _, f in c.values()]):.2f}")
    print(f"{budget} layers - shipped per cell: {diffs[0]:+.2f} to {diffs[-1]:+.2f} BLEU, "
          f"{sum(d < 0 for d in diffs)} lower, {sum(d > 0 for d in diffs)} higher")


def ro_lv(name: str, log: Path, rates: Path) -> None:
    with gzip.open(log, "rt") as lines:
        rows = [json.loads(line) for line in lines if "valid_bleu" in line]
    late = [r["valid_bleu"] for r in rows if r["tokens"] >= 15_000_000]
    chosen = json.loads(rates.read_text())
    tuned = chosen["scores"][str(chosen["lr"])]
    chrf, bleu = mean([v["chrf_mean"] for v in late]), mean([v["mean"] for v in late])
    print(f"{name}: ro/lv validation from 15.0M on ({len(late)}): chrF {chrf:.2f}, BLEU {bleu:.2f}, "
          f"4K-token fine-tune at 22.8M (lr {chosen['lr']}): chrF {tuned['chrf_mean']:.2f}, "
          f"BLEU {tuned['mean']:.2f}")


if __name__ == "__main__":
    for budget in SHIPPED:
        held_out(budget)
    full = SHIPPED["22.8M"]
    ro_lv("shipped", full / "metanmt_train_log.jsonl.gz", full / "finetune_lr_metanmt.json")
    ro_lv("layers", HERE / "metanmt_train_log.jsonl.gz", LAYERS["22.8M"] / "finetune_lr_metanmt.json")
