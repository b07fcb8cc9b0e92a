#!/usr/bin/env bash
# The held-out verdict under the twelfth sitting's MetaNMT setting (125-token supports, 625-token queries, inner
# Adam 1e-4), at 15.0M target tokens per system (train.steps 20000 of the shipped 30400; the schedule does not
# depend on train.steps, so these are the shipped runs' checkpoints at 15.0M tokens).
#
#   bash drive.sh PREPARED_DATA META_RUN MULTI_RUN OLD_CONFIG OUT
#
# PREPARED_DATA: `metanmt prepare --config recipes/configs/offline_tatoeba.yaml` (the eleventh sitting's data8000);
# META_RUN: a MetaNMT run of the shipped config (here the twelfth sitting's, at 10,900 meta-steps);
# MULTI_RUN: a MultiNMT run of the same data and schedule (here the eleventh sitting's vocabulary probe at
# 10,220 updates); OLD_CONFIG: the config that run recorded (the shipped one before the twelfth sitting: its meta
# section differs, which MultiNMT never reads; `git show 3efb16d:recipes/configs/offline_tatoeba.yaml`).
# One process per system, one thread each; the evaluation follows each system's training in its process.
set -euo pipefail
DATA=$1 META=$2 MULTI=$3 OLD=$4 OUT=$5
REPO="$(cd "$(dirname "$0")/../../.." && pwd)"
export OMP_NUM_THREADS=1
mkdir -p "$OUT/meta" "$OUT/multi"
sed 's/^\(  *\)steps: 30400/\1steps: 20000/' "$REPO/recipes/configs/offline_tatoeba.yaml" > "$OUT/meta/config.yaml"
sed 's/^\(  *\)steps: 30400/\1steps: 20000/' "$OLD" > "$OUT/multi/config.yaml"
[ -d "$OUT/meta/metanmt" ] || cp -r "$META" "$OUT/meta/metanmt"
[ -d "$OUT/multi/multinmt" ] || cp -r "$MULTI" "$OUT/multi/multinmt"
for pair in "meta metanmt" "multi multinmt"; do
  set -- $pair
  metanmt experiment --config "$OUT/$1/config.yaml" --data "$DATA" --output-dir "$OUT/$1" --systems "$2" \
    --validation --sizes 0 4000 16000 --splits test --max-eval-sentences 300 --checkpoint last --no-progress \
    > "$OUT/$1.log" 2>&1 &
done
wait
mkdir -p "$OUT/eval_all"
cp -r "$OUT/meta/eval/metanmt" "$OUT/multi/eval/multinmt" "$OUT/eval_all/"
metanmt report --runs "$OUT/eval_all" --output-dir "$OUT/report" --train-runs "$OUT/meta/metanmt" "$OUT/multi/multinmt"
