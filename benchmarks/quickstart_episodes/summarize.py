"""One row per (setting, seed): MetaNMT's validation (ro/lv, the selection basis), source gap, dev BLEU and
the held-out cells, against the same seed's MultiNMT.

    python summarize.py ROW=REPORT_JSON:METANMT_RUN:MULTINMT_RUN ...
"""

import json
import sys
from pathlib import Path


def best_valid(run: Path) -> tuple[float, float]:
    """The best and the final mean ro/lv validation BLEU of a training run."""
    records = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    scores = [r["valid_bleu"]["mean"] for r in records if "valid_bleu" in r]
    return max(scores), scores[-1]


def row(name: str, report: Path, meta_run: Path, multi_run: Path) -> str:
    r = json.loads(report.read_text())
    cells = r["verdict"]["comparisons"]
    wins = [sum(c.get("winner") == s for c in cells) for s in ("metanmt", "multinmt")]
    gap = r["verdict"]["source_gap"]
    dev = {s: sum(x["scores"][s]["bleu"] for x in r["training_languages"]["rows"]) / 18
           for s in ("metanmt", "multinmt")}
    at2k = {t["lang"]: {c["system"]: c["bleu_mean"] for c in t["cells"] if c["tokens"] == max(t["tokens"])}
            for t in r["tables"]}
    (best, final), (multi_best, _) = best_valid(meta_run), best_valid(multi_run)
    held_out = " / ".join(f"{at2k[x]['metanmt']:.1f} vs {at2k[x]['multinmt']:.1f}"
                          for x in ("ca", "nb", "uk"))
    return (f"| {name} | {best:.2f} ({final:.2f}) / {multi_best:.2f} | {gap['metanmt']['gap']:.2f} / "
            f"{gap['multinmt']['gap']:.2f} | {dev['metanmt']:.1f} / {dev['multinmt']:.1f} | {held_out} | "
            f"{wins[0]} / {wins[1]} / {len(cells) - sum(wins)} |")


print("| setting, seed | ro/lv valid BLEU: MetaNMT best (final) / MultiNMT best | source gap | "
      "dev BLEU (18) | ca / nb / uk after 2K | cells Meta better / Multi better / n.s. |")
print("|---|---|---|---|---|---|")
for arg in sys.argv[1:]:
    name, paths = arg.split("=", 1)
    print(row(name, *map(Path, paths.split(":"))))
