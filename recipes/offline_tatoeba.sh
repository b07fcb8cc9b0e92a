#!/usr/bin/env bash
# MetaNMT vs MultiNMT on the offline Tatoeba/NTREX setup (recipes/configs/offline_tatoeba.yaml), sized for
# 2 CPU cores (training about an hour per system, side by side; evaluation about 30 minutes more with the
# in-domain tests only): 18 meta-training languages, validation ro/lv, test fi/tr/ko/ca/uk/nb, fine-tuning on
# 0/4K/16K English tokens x 3 draws at the rate each system chose on ro/lv, in-domain Tatoeba test +
# out-of-domain WMT/FLORES/Korean-news tests. To train longer, raise train.steps in the config and re-run:
# the runs continue where they ended (move OUT/finetune and OUT/eval away first, so the longer runs are
# fine-tuned and evaluated anew).
#
#   recipes/offline_tatoeba.sh DATA_ROOT OUT_DIR        # DATA_ROOT: the shared/data folder
#
# Re-running the same command continues an interrupted run.
set -euo pipefail
DATA_ROOT=${1:?usage: $0 DATA_ROOT OUT_DIR}
OUT=${2:?usage: $0 DATA_ROOT OUT_DIR}
CFG="$(cd "$(dirname "$0")" && pwd)/configs/offline_tatoeba.yaml"
SIZES=(0 4000 16000)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # one core per system

mkdir -p "$OUT"
metanmt prepare --config "$CFG" --data-root "$DATA_ROOT" --output-dir "$OUT/data"
# The two systems are independent until the report: one process each.
pids=()
for system in metanmt multinmt; do
  metanmt experiment --config "$CFG" --data-root "$DATA_ROOT" --output-dir "$OUT" --systems "$system" \
    --sizes "${SIZES[@]}" --no-progress > "$OUT/$system.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
metanmt report --runs "$OUT/eval" --output-dir "$OUT/report" --train-runs "$OUT/metanmt" "$OUT/multinmt"
echo "report: $OUT/report/report.md"
