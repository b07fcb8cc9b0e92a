#!/usr/bin/env bash
# Sixteenth sitting: the quickstart's MetaNMT episodes, 400/400 with inner Adam 1e-3 (shipped until then) vs the
# offline config's shape, 133/667 with 2e-4; seventeenth: 133/667 with the inner loop on the transformer layers
# only (fast_params, the tied embedding outside). Three training seeds each, one thread per process, on the prepared
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
meta_only() {  # SETTING SEED: MetaNMT alone (MultiNMT does not depend on its settings)
  metanmt experiment --config $C/$1_seed$2.yaml --data $D --output-dir $W/$1_seed$2 --systems metanmt \
    --no-progress > $W/$1_seed$2.log 2>&1
}
pair() {  # SETTING SEED: its MetaNMT and the same seed's MultiNMT in one report
  rm -rf $W/$1_pair$2 && mkdir -p $W/$1_pair$2/eval
  cp -r $W/$1_seed$2/eval/metanmt $W/shipped_seed$2/eval/multinmt $W/$1_pair$2/eval/
  metanmt report --runs $W/$1_pair$2/eval --output-dir $W/$1_pair$2/report \
    --train-runs $W/$1_seed$2/metanmt $W/shipped_seed$2/multinmt > $W/$1_pair$2.log 2>&1
}
# seventeenth sitting: "layers" = 133/667 with the tied embedding outside the inner loop (fast_params), "decoder"
# = the decoder layers only, "lr5e-4" = layers with inner Adam 5e-4 (shipped)
for setting in s133 layers decoder lr5e-4; do
  meta_only $setting 1 & meta_only $setting 2 & wait
  meta_only $setting 3
  for s in 1 2 3; do pair $setting $s; done
done
