#!/usr/bin/env bash
# Why MetaNMT learns slower per update than MultiNMT (twelfth sitting, 2026-11-27). Variants of the shipped
# offline config (recipes/configs/offline_tatoeba.yaml), two at a time side by side (1 thread each, 2 cores),
# each for TRAIN_S seconds of wall time, from scratch on the shipped prepared data:
#   round 1: FOMAML with no inner step (inner SGD at rate 0: single-language 375-token updates of the query loss)
#            and MultiNMT with 375-token updates (mixed languages)
#   round 2: FOMAML with a 125-token support and a 625-token query, inner Adam at 5e-4 (shipped) and 1e-4
# then the query-loss change after one inner step (benchmarks/inner_step_gain.py) on a MultiNMT checkpoint
# (MULTINMT_CKPT: the vocabulary probe's 8K run at 10,200 updates) and on the new MetaNMT, and its dev BLEU.
#   bash benchmarks/offline_tatoeba/2026-11-27-support/drive.sh ../shared/data runs/support MULTINMT_CKPT
set -u
DATA_ROOT=${1:?usage: $0 DATA_ROOT WORK MULTINMT_CKPT}; WORK=${2:?usage}; CKPT=${3:?usage}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p "$WORK"
CFG=$WORK/base.yaml   # the offline config as it was before this study (375/375 episodes, inner Adam 5e-4)
git show 3efb16d:recipes/configs/offline_tatoeba.yaml > "$CFG"
[ -f "$WORK/data/manifest.json" ] || metanmt prepare --config $CFG --data-root "$DATA_ROOT" \
  --output-dir "$WORK/data" > "$WORK/prepare.log" 2>&1
variant() {  # NAME SED-SCRIPT
  sed "$2" $CFG > "$WORK/$1.yaml"
}
variant fomaml_lr0 's/^  inner_optimizer: adam/  inner_optimizer: sgd/; s/^  inner_lr: 0.0005/  inner_lr: 0.0/'
variant multi375 's/^  support_tokens: 375/  support_tokens: 125/; s/^  query_tokens: 375/  query_tokens: 250/'
variant s125_0.0005 's/^  support_tokens: 375/  support_tokens: 125/; s/^  query_tokens: 375/  query_tokens: 625/'
variant s125_0.0001 's/^  support_tokens: 375/  support_tokens: 125/; s/^  query_tokens: 375/  query_tokens: 625/; s/^  inner_lr: 0.0005/  inner_lr: 0.0001/'
side_by_side() {  # COMMAND:NAME COMMAND:NAME
  pids=()
  for job in "$@"; do
    metanmt "${job%%:*}" --config "$WORK/${job#*:}.yaml" --data "$WORK/data" --output-dir "$WORK/${job#*:}" \
      --no-progress > "$WORK/${job#*:}.log" 2>&1 &
    pids+=($!)
  done
  sleep "${TRAIN_S:-2400}"; kill -TERM "${pids[@]}"; wait
}
side_by_side meta-train:fomaml_lr0 pretrain:multi375
side_by_side meta-train:s125_0.0005 meta-train:s125_0.0001
# (the sitting's runs overlapped: round 1 ran on while round 2 started, and s125_0.0001 went on alone to 9,900
# meta-steps and beyond; the comparison is per update, so wall time only limits how far each run got)
G="python benchmarks/inner_step_gain.py --data $WORK/data"
$G --model "$CKPT" --output "$WORK/inner_step_gain_multinmt_375_375.json" \
  --settings adam:1e-5 adam:3e-5 adam:1e-4 adam:5e-4 sgd:0.03 sgd:0.1 sgd:0.3 sgd:1.0 sgd:3.0
$G --model "$CKPT" --output "$WORK/inner_step_gain_multinmt_1500_375.json" --support 1500 --query 375 \
  --settings adam:1e-4 adam:5e-4 sgd:0.1
for m in "$CKPT" "$WORK/s125_0.0001/last"; do
  $G --model "$m" --output "$WORK/inner_step_gain_$(basename "$(dirname "$m")")_125_625.json" --support 125 \
    --query 625 --settings adam:1e-5 adam:3e-5 adam:1e-4 adam:5e-4 sgd:0.03 sgd:0.1 sgd:0.3
done
python benchmarks/adapted_dev.py --config "$WORK/s125_0.0001.yaml" --data "$WORK/data" \
  --model "$WORK/s125_0.0001/last" --steps 0 --output "$WORK/dev_metanmt125.json"
for sys in metanmt125:"$WORK/s125_0.0001/last" multinmt:"$CKPT"; do   # validation languages, 16K tokens, draw 0
  for l in ro lv; do
    d=$WORK/rolv/${sys%%:*}/$l
    metanmt finetune --model "${sys#*:}" --lang $l --tokens 16000 --draw 0 --config recipes/configs/offline_tatoeba.yaml \
      --lr 0.00015 --data "$WORK/data" --output-dir "$d"
    metanmt evaluate --model "$d" --lang $l --split test --max-sentences 300 --data "$WORK/data" --output "$d.json"
  done
done
# the quickstart variant: MetaNMT of metanmt/configs/demo.yaml with 133/667-token episodes and inner Adam 2e-4,
# on a quickstart's prepared data (QS=runs/quickstart), its MultiNMT evaluations copied beside for the report
# metanmt experiment --config quickstart_demo_s133.yaml --data $QS/data --output-dir $WORK/qs --systems metanmt
# cp -r $WORK/qs/eval/metanmt $QS/eval/multinmt $WORK/qs_all/eval/ && metanmt report --runs $WORK/qs_all/eval \
#   --output-dir $WORK/qs_all/report --train-runs $WORK/qs/metanmt $QS/multinmt
