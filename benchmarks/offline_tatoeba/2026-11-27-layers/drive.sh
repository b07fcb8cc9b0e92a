#!/usr/bin/env bash
# Seventeenth and eighteenth sittings: the shipped offline config's MetaNMT with the inner loop on the transformer
# layers only (layers.yaml = recipes/configs/offline_tatoeba.yaml + meta.fast_params ["model.*.layers.*"]), one
# thread, on the prepared 8K-piece data (DATA: `metanmt prepare --config recipes/configs/offline_tatoeba.yaml`),
# against the shipped run's MetaNMT (../2026-11-27-verdict-22.8M/metanmt_train_log.jsonl.gz: same config, seed and
# data). Trained to 15.0M target tokens (train.steps 20000: the schedule does not depend on it) and evaluated there
# as ../2026-11-27-verdict-15M was (6 held-out languages, 0 / 4K / 16K tokens, 3 draws per fine-tuned cell, first
# 300 test sentences, beam 4), then continued to the shipped 22.8M and evaluated again. Each report pairs it with
# the shipped MultiNMT's evaluation at the same budget, the OUT of ../2026-11-27-verdict-15M/drive.sh (V15) and of
# ../2026-11-27-verdict-22.8M/drive.sh (V22). Re-running continues where it stopped.
#
#   bash drive.sh DATA WORK V15 V22
#   python benchmarks/curves.py ../2026-11-27-verdict-22.8M/metanmt_train_log.jsonl.gz WORK/metanmt   # curves.md
set -euo pipefail
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
DATA=$1 WORK=$2 V15=$3 V22=$4
HERE=$(dirname "$(realpath "$0")")
mkdir -p "$WORK"
sed 's/^\(  *\)steps: 30400/\1steps: 20000/' "$HERE/layers.yaml" > "$WORK/layers15.yaml"

snapshot() {  # BUDGET CONFIG: a copy of the run as it is now (before training goes on), with its config
  mkdir -p "$WORK/at$1" && cp "$2" "$WORK/at$1/config.yaml"
  [ -d "$WORK/at$1/metanmt" ] || cp -r "$WORK/metanmt" "$WORK/at$1/metanmt"
}

evaluate() {  # BUDGET: the copy evaluated (one draw per fine-tuned cell first, then the other two)
  for draws in 1 3; do
    metanmt experiment --config "$WORK/at$1/config.yaml" --data "$DATA" --output-dir "$WORK/at$1" --systems metanmt \
      --sizes 0 4000 16000 --draws $draws --splits test --max-eval-sentences 300 --checkpoint last --no-progress
  done
}

pair() {  # BUDGET MULTI_OUT: a report of the copy beside MultiNMT's evaluation (the cells MetaNMT has)
  local at="$WORK/at$1" multi="$2/multi/eval/multinmt"
  rm -rf "$at/paired" && mkdir -p "$at/paired/eval_all/multinmt"
  cp -r "$at/eval/metanmt" "$at/paired/eval_all/"
  cp "$multi/finetune_lr.json" "$at/paired/eval_all/multinmt/"
  (cd "$multi" && find . -name "train_dev*" -o -name "*_test.*") | while read -r f; do
    case $f in *_test.*) [ -f "$at/eval/metanmt/${f%%_test.*}_test.json" ] || continue ;; esac
    mkdir -p "$at/paired/eval_all/multinmt/$(dirname "$f")" && cp "$multi/$f" "$at/paired/eval_all/multinmt/$f"
  done
  metanmt report --runs "$at/paired/eval_all" --output-dir "$at/paired/report" --train-runs "$at/metanmt" \
    "$2/multi/multinmt"
}

metanmt meta-train --config "$WORK/layers15.yaml" --data "$DATA" --output-dir "$WORK/metanmt" --no-progress
snapshot 15 "$WORK/layers15.yaml"
(evaluate 15 && pair 15 "$V15") > "$WORK/eval15.log" 2>&1 &
metanmt meta-train --config "$HERE/layers.yaml" --data "$DATA" --output-dir "$WORK/metanmt" --no-progress
snapshot 22 "$HERE/layers.yaml"
wait
(evaluate 22 && pair 22 "$V22") > "$WORK/eval22.log" 2>&1
