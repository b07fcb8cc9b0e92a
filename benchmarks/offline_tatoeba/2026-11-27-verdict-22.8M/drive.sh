#!/usr/bin/env bash
# The held-out verdict at the shipped budget, 22.8M target tokens per system (train.steps 30400): the runs of
# 2026-11-27-verdict-15M (15.0M tokens) continued with the shipped config (MetaNMT) and the config its MultiNMT
# run recorded (OLD_CONFIG, below), one process per system, one thread each, side by side; then each system's
# evaluation as soon as its training ends, one draw per fine-tuned cell first, then the other two.
#
#   bash drive.sh PREPARED_DATA RUNS_15M OLD_CONFIG OUT
#
# PREPARED_DATA: `metanmt prepare --config recipes/configs/offline_tatoeba.yaml` (the eleventh sitting's data8000);
# RUNS_15M: the OUT of 2026-11-27-verdict-15M/drive.sh (its meta/metanmt and multi/multinmt runs at 15.0M tokens);
# OLD_CONFIG: `git show 3efb16d:recipes/configs/offline_tatoeba.yaml` (the MultiNMT run's config: its meta section
# differs from the shipped one, which MultiNMT never reads). Re-running continues where it stopped.
set -euo pipefail
DATA=$1 RUNS=$2 OLD=$3 OUT=$4
REPO="$(cd "$(dirname "$0")/../../.." && pwd)"
export OMP_NUM_THREADS=1
mkdir -p "$OUT/meta" "$OUT/multi"
cp "$REPO/recipes/configs/offline_tatoeba.yaml" "$OUT/meta/config.yaml"
cp "$OLD" "$OUT/multi/config.yaml"
[ -d "$OUT/meta/metanmt" ] || cp -r "$RUNS/meta/metanmt" "$OUT/meta/metanmt"
[ -d "$OUT/multi/multinmt" ] || cp -r "$RUNS/multi/multinmt" "$OUT/multi/multinmt"
for pair in "meta metanmt" "multi multinmt"; do
  set -- $pair
  for draws in 1 3; do
    metanmt experiment --config "$OUT/$1/config.yaml" --data "$DATA" --output-dir "$OUT/$1" --systems "$2" \
      --sizes 0 4000 16000 --draws $draws --splits test --max-eval-sentences 300 --checkpoint last --no-progress
  done > "$OUT/$1.log" 2>&1 &
done
wait
mkdir -p "$OUT/eval_all"
cp -r "$OUT/meta/eval/metanmt" "$OUT/multi/eval/multinmt" "$OUT/eval_all/"
metanmt report --runs "$OUT/eval_all" --output-dir "$OUT/report" --train-runs "$OUT/meta/metanmt" "$OUT/multi/multinmt"
