"""One row per (setting, seed): MetaNMT's validation (ro/lv, the selection basis), source gap, dev BLEU and
the held-out cells, against the same seed's MultiNMT; then the mean of each setting's seeds.

    python summarize.py ROW=REPORT_JSON:METANMT_RUN:MULTINMT_RUN ...
    python summarize.py --committed      # every setting of this directory, from its committed files

A run is a training output directory or its train log (plain or gzipped). ROW is "SETTING SEED".
"""

import gzip
import json
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETTINGS = ("shipped", "s133", "layers", "decoder", "lr5e-4")


def best_valid(run: Path) -> tuple[float, float]:
    """The best and the final mean ro/lv validation BLEU of a training run."""
    log = run / "train_log.jsonl" if run.is_dir() else run
    text = gzip.decompress(log.read_bytes()) if log.suffix == ".gz" else log.read_bytes()
    records = [json.loads(line) for line in text.decode("utf-8").splitlines()]
    scores = [r["valid_bleu"]["mean"] for r in records if "valid_bleu" in r]
    return max(scores), scores[-1]


def measures(report: Path, meta_run: Path, multi_run: Path) -> list[float]:
    """The row's numbers, in the table's order."""
    r = json.loads(report.read_text())
    cells = r["verdict"]["comparisons"]
    wins = [sum(c.get("winner") == s for c in cells) for s in ("metanmt", "multinmt")]
    gap = r["verdict"]["source_gap"]
    dev = [sum(x["scores"][s]["bleu"] for x in r["training_languages"]["rows"]) / 18
           for s in ("metanmt", "multinmt")]
    at2k = {t["lang"]: {c["system"]: c["bleu_mean"] for c in t["cells"] if c["tokens"] == max(t["tokens"])}
            for t in r["tables"]}
    (best, final), (multi_best, _) = best_valid(meta_run), best_valid(multi_run)
    held_out = [at2k[x][s] for x in ("ca", "nb", "uk") for s in ("metanmt", "multinmt")]
    return [best, final, multi_best, gap["metanmt"]["gap"], gap["multinmt"]["gap"], *dev, *held_out,
            wins[0], wins[1], len(cells) - sum(wins)]


def line(name: str, m: list[float]) -> str:
    held_out = " / ".join(f"{m[i]:.1f} vs {m[i + 1]:.1f}" for i in (7, 9, 11))
    return (f"| {name} | {m[0]:.2f} ({m[1]:.2f}) / {m[2]:.2f} | {m[3]:.2f} / {m[4]:.2f} | "
            f"{m[5]:.1f} / {m[6]:.1f} | {held_out} | {m[13]:g} / {m[14]:g} / {m[15]:g} |")


def committed() -> list[str]:
    """Row arguments for every committed setting and seed (MultiNMT: the shipped run of the same seed)."""
    return [f"{s} {n}={HERE}/{s}_seed{n}/report.json:{HERE}/{s}_seed{n}/metanmt_train_log.jsonl.gz:"
            f"{HERE}/shipped_seed{n}/multinmt_train_log.jsonl.gz" for s in SETTINGS for n in (1, 2, 3)]


def main(args: list[str]) -> None:
    print("| setting, seed | ro/lv valid BLEU: MetaNMT best (final) / MultiNMT best | source gap | "
          "dev BLEU (18) | ca / nb / uk after 2K | cells Meta better / Multi better / n.s. (sums) |")
    print("|---|---|---|---|---|---|")
    groups = defaultdict(list)
    for arg in committed() if args == ["--committed"] else args:
        name, paths = arg.split("=", 1)
        groups[name.rsplit(" ", 1)[0]].append(m := measures(*map(Path, paths.split(":"))))
        print(line(name, m))
    for setting, rows in groups.items():
        if len(rows) > 1:  # means over the seeds; the cell counts summed
            mean = [sum(col) / len(rows) for col in zip(*rows)]
            print(line(f"mean, {setting}", mean[:13] + [sum(r[i] for r in rows) for i in (13, 14, 15)]))


if __name__ == "__main__":
    main(sys.argv[1:])
