#!/usr/bin/env bash
# Your language, the experiment's question: fine-tune both systems of a finished experiment (MetaNMT:
# EXPERIMENT_DIR/metanmt/best, MultiNMT: EXPERIMENT_DIR/multinmt/best) on 1K/4K/16K English tokens x 3 draws
# of your own pairs, score each on a test set held out of them, and write the experiment's report:
# OUT/report/report.md, report.json and bleu_vs_size.png (size 0: each system before fine-tuning).
#
#   recipes/adapt_your_language.sh SRC_FILE EN_FILE LANG OUT [EXPERIMENT_DIR]
#
# SRC_FILE and EN_FILE are line-aligned (line i of EN_FILE translates line i of SRC_FILE); LANG is any
# ISO 639-1/639-3 code or BCP-47 tag (ast, qu, gsw-CH). EXPERIMENT_DIR defaults to runs/quickstart.
# Held out, in file order: the LAST N lines are the test set and the N lines before them the dev set (early
# stopping), N = 10% of the lines, at most 500 (OUT/data); no draw ever trains on them. Sizes larger than
# the rest are skipped, with a note. Each system is fine-tuned with the experiment's settings (its run.json,
# and the learning rate it chose, eval/SYSTEM/finetune_lr.json). Re-running continues where it stopped.
#
# Environment: SIZES="1000 4000 16000" (English tokens), DRAWS=3 (seeds 1..DRAWS), COMET_MODEL=PATH (adds
# COMET where unbabel-comet is installed), PYTHON=python3 (the interpreter metanmt is installed in).
set -euo pipefail
USAGE="usage: $0 SRC_FILE EN_FILE LANG OUT [EXPERIMENT_DIR]   ($0 --help for more)"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"
  exit 0
fi
fail() { echo "$(basename "$0"): error: $*" >&2; exit 2; }
(( $# == 4 || $# == 5 )) || { echo "$USAGE" >&2; exit 2; }
SRC=$1 EN=$2 TAG=$3 OUT=$4 EXP=${5:-runs/quickstart}
read -r -a SIZES <<< "${SIZES:-1000 4000 16000}"
DRAWS=${DRAWS:-3}
PY=${PYTHON:-python3}
SYSTEMS=(metanmt multinmt)

for f in "$SRC" "$EN"; do [[ -f "$f" ]] || fail "$f: no such file"; done
for s in "${SYSTEMS[@]}"; do
  [[ -f "$EXP/$s/best/config.json" ]] || fail "$EXP/$s/best is not a checkpoint: give the directory of a" \
    "finished 'metanmt experiment' or 'metanmt quickstart'"
done
"$PY" -c "import metanmt" 2>/dev/null || fail "'$PY' cannot import metanmt: set PYTHON to its interpreter"

# ---- hold out the test and dev sets (the last lines), the rest is training data
count() { awk 'END { print NR }' "$1"; }
lines=$(count "$SRC")
[[ "$lines" == "$(count "$EN")" ]] || fail "misaligned files: $SRC has $lines lines but $EN has $(count "$EN")"
held=$(( lines / 10 > 500 ? 500 : (lines / 10 > 0 ? lines / 10 : 1) ))
train=$(( lines - 2 * held ))
(( train > 0 )) || fail "$SRC has $lines lines: too few to hold out a dev and a test set and train on the rest"
DATA="$OUT/data"
mkdir -p "$DATA"
split() {  # FILE SIDE
  head -n "$train" "$1" > "$DATA/train.$2"
  sed -n "$(( train + 1 )),$(( train + held ))p" "$1" > "$DATA/dev.$2"
  tail -n "+$(( train + held + 1 ))" "$1" > "$DATA/test.$2"
}
split "$SRC" src
split "$EN" en
tokens=$("$PY" -c 'import sys
from metanmt.data.prepare import english_token_counts
print(int(english_token_counts(open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()).sum()))
' "$DATA/train.en")
echo "$TAG: $train training pairs ($tokens English tokens), $held dev and $held test pairs (the last lines) in $DATA"
fitting=()
for size in "${SIZES[@]}"; do
  if (( size > tokens )); then
    echo "note: skipping $size tokens: the training part has only $tokens English tokens" >&2
  else
    fitting+=("$size")
  fi
done

finetune_config() {  # SYSTEM -> OUT/SYSTEM.finetune.yaml: the experiment's fine-tuning settings and chosen lr
  "$PY" - "$EXP" "$1" "$OUT/$1.finetune.yaml" <<'PY'
import json, sys
from pathlib import Path
import yaml
exp, system, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
run, chosen = exp / system / "run.json", exp / "eval" / system / "finetune_lr.json"
section = json.loads(run.read_text(encoding="utf-8"))["config"]["finetune"] if run.is_file() else {}
if chosen.is_file():
    section["lr"] = json.loads(chosen.read_text(encoding="utf-8"))["lr"]
out.write_text(yaml.safe_dump({"finetune": section}), encoding="utf-8")
PY
}
evaluate() {  # MODEL RESULT_JSON [ARGS...]: score MODEL on the held-out test set, unless done before
  [[ -f "$2" ]] || metanmt evaluate --model "$1" --src "$DATA/test.src" --ref "$DATA/test.en" --output "$2" \
    ${COMET_MODEL:+--comet-model "$COMET_MODEL"} "${@:3}"
}

# ---- each system: as trained (size 0), then fine-tuned on each size and draw
for system in "${SYSTEMS[@]}"; do
  finetune_config "$system"
  evaluate "$EXP/$system/best" "$OUT/eval/$system/0.json" --lang "$TAG"
  for size in "${fitting[@]}"; do
    for draw in $(seq 1 "$DRAWS"); do
      model="$OUT/models/$system/${size}_draw$draw"
      [[ -f "$model/config.json" ]] || metanmt finetune --model "$EXP/$system/best" --lang "$TAG" \
        --config "$OUT/$system.finetune.yaml" --train-src "$DATA/train.src" --train-tgt "$DATA/train.en" \
        --dev-src "$DATA/dev.src" --dev-tgt "$DATA/dev.en" --max-tokens "$size" --seed "$draw" \
        --output-dir "$model"
      evaluate "$model" "$OUT/eval/$system/${size}_draw$draw.json"
    done
  done
done
metanmt report --runs "$OUT/eval" --output-dir "$OUT/report"
echo "report: $OUT/report/report.md"
