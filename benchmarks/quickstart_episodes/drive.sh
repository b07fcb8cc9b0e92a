#!/usr/bin/env bash
# Sixteenth sitting: the quickstart's MetaNMT episodes, shipped (400/400, inner Adam 1e-3) vs the offline
# config's shape (133/667, 2e-4), three training seeds each, on the fresh-clone quickstart's prepared data, one
# thread per process. Seed 1 of the shipped setting is the fresh-clone quickstart itself (QS). MultiNMT does not
# depend on the episode settings: each s133 report pairs the s133 MetaNMT with the same seed's shipped MultiNMT.
#   bash drive.sh QS_OUTPUT_DIR WORK_DIR     (QS_OUTPUT_DIR: `metanmt quickstart --output-dir` of the old demo.yaml)
set -eu
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
QS=$(realpath $1); W=$(realpath $2); C=$(dirname $(realpath $0)); D=$QS/data
for s in 2 3; do
  metanmt experiment --config $C/shipped_seed$s.yaml --data $D --output-dir $W/shipped_seed$s --jobs 2 \
    --no-progress > $W/shipped_seed$s.log 2>&1
done
meta_only() {
  metanmt experiment --config $C/s133_seed$1.yaml --data $D --output-dir $W/s133_seed$1 --systems metanmt \
    --no-progress > $W/s133_seed$1.log 2>&1
}
meta_only 1 & meta_only 2 & wait
meta_only 3
for s in 1 2 3; do
  multi=$([ $s = 1 ] && echo $QS || echo $W/shipped_seed$s)
  rm -rf $W/s133_pair$s && mkdir -p $W/s133_pair$s/eval
  cp -r $W/s133_seed$s/eval/metanmt $multi/eval/multinmt $W/s133_pair$s/eval/
  metanmt report --runs $W/s133_pair$s/eval --output-dir $W/s133_pair$s/report \
    --train-runs $W/s133_seed$s/metanmt $multi/multinmt > $W/s133_pair$s.log 2>&1
done
