#!/usr/bin/env bash
# MetaNMT vs MultiNMT (and MultiNMT+MetaNMT: multilingual pre-training for 5/8 of the budget, then
# meta-learning from there) on the offline Tatoeba setup (recipes/configs/offline_tatoeba.yaml), sized for 2 cores:
# MetaNMT and MultiNMT train ~2.9 hours each on one core (22.8M target tokens, validations included),
# MetaNMT on one core, MultiNMT then MultiNMT+MetaNMT (3/8 of the budget, ~1.1 hours more) on the other; then
# evaluation (in-domain and out-of-domain tests, fine-tunes of up to 150 steps): about 6 hours in all (estimated
# from the parts; not timed end to end), in several sittings if need be. The last checkpoint of each run is
# fine-tuned: the ro/lv validation chrF that picks the "best" one stayed flat (12-13.5) while the source gap and the
# training-language BLEU kept growing (benchmarks/offline_tatoeba/README.md, fifth sitting). 18 meta-training
# languages, validation ro/lv, test fi/tr/ko/ca/uk/nb, fine-tuning on 0/4K/16K English tokens x 3 draws at the
# rate each system chose on ro/lv (ro/lv themselves too: reported apart, never in the verdict), in-domain
# Tatoeba test + out-of-domain WMT/FLORES/Korean-news tests. To
# train longer, raise train.steps in the config and re-run: the runs continue where they ended (move
# OUT/finetune and OUT/eval away first, so the longer runs are fine-tuned and evaluated anew).
#
#   recipes/offline_tatoeba.sh DATA_ROOT OUT_DIR        # DATA_ROOT: the shared/data folder
#
# Re-running the same command continues an interrupted run.
set -euo pipefail
DATA_ROOT=${1:?usage: $0 DATA_ROOT OUT_DIR}
OUT=${2:?usage: $0 DATA_ROOT OUT_DIR}
CFG="$(cd "$(dirname "$0")" && pwd)/configs/offline_tatoeba.yaml"
SIZES=(0 4000 16000)

# Two processes side by side, the threads shared out (one core each on 2 cores): MetaNMT in one; MultiNMT, then
# MultiNMT+MetaNMT (it starts from a MultiNMT checkpoint) in the other. Logs: OUT/logs/; the report at the end.
metanmt experiment --config "$CFG" --data-root "$DATA_ROOT" --output-dir "$OUT" --jobs 2 \
  --sizes "${SIZES[@]}" --validation --checkpoint last --no-progress
echo "report: $OUT/report/report.md"
