#!/usr/bin/env bash
# Sixteenth sitting: the quickstart's MetaNMT episodes, 400/400 with inner Adam 1e-3 (shipped until then) vs the
# offline config's shape, 133/667 with 2e-4, three training seeds each, one thread per process, on the prepared
# demo data (`metanmt prepare --config metanmt/configs/demo.yaml`, or a quickstart's OUT/data: the same files).
# MultiNMT does not depend on the episode settings: each 133/667 report pairs its MetaNMT with the same seed's
# MultiNMT. (The sitting took seed 1 of the old setting from the fresh-clone quickstart at 31b8ae8: the same
# settings, one thread per system; its report is shipped_seed1/. Its seeds 2 and 3 also trained MultiNMT+MetaNMT,
# the experiment's default third system, which does not change the other two.)
#   bash drive.sh DATA WORK_DIR
set -eu
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
D=$(realpath $1); W=$(realpath $2); C=$(dirname $(realpath $0))
for s in 1 2 3; do
  metanmt experiment --config $C/shipped_seed$s.yaml --data $D --output-dir $W/shipped_seed$s --jobs 2 \
    --systems metanmt multinmt --no-progress > $W/shipped_seed$s.log 2>&1
done
meta_only() {
  metanmt experiment --config $C/s133_seed$1.yaml --data $D --output-dir $W/s133_seed$1 --systems metanmt \
    --no-progress > $W/s133_seed$1.log 2>&1
}
meta_only 1 & meta_only 2 & wait
meta_only 3
for s in 1 2 3; do
  rm -rf $W/s133_pair$s && mkdir -p $W/s133_pair$s/eval
  cp -r $W/s133_seed$s/eval/metanmt $W/shipped_seed$s/eval/multinmt $W/s133_pair$s/eval/
  metanmt report --runs $W/s133_pair$s/eval --output-dir $W/s133_pair$s/report \
    --train-runs $W/s133_seed$s/metanmt $W/shipped_seed$s/multinmt > $W/s133_pair$s.log 2>&1
done
