"""Training throughput of MetaNMT relative to MultiNMT, read from an experiment's train logs.

    python benchmarks/throughput.py RUN_DIR      # RUN_DIR holds metanmt/ and multinmt/ train_log.jsonl

Both systems train the same preset on the same token budget; tokens are target (English) tokens, and the
wall time of each run includes its in-training validations.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def last_record(run: Path) -> dict:
    lines = (run / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    return json.loads(lines[-1])


def main(run_dir: str) -> None:
    meta, multi = (last_record(Path(run_dir) / s) for s in ("metanmt", "multinmt"))
    for name, rec in (("MetaNMT (FOMAML)", meta), ("MultiNMT", multi)):
        print(f"{name:17s} {rec['tokens']:>9d} target tokens in {rec['step']:4d} steps, "
              f"{rec['tokens_per_s']:8.1f} tokens/s")
    print(f"MetaNMT / MultiNMT tokens/s: {meta['tokens_per_s'] / multi['tokens_per_s']:.3f} (target >= 0.9)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
