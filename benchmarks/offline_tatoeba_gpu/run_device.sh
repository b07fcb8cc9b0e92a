#!/usr/bin/env bash
# The offline Tatoeba experiment at a GPU budget, on one GPU machine without internet or the corpora:
# the data is prepared beforehand (same data section as the CPU recipe) and travels as a tarball.
#
#   metanmt prepare --config recipes/configs/offline_tatoeba_gpu.yaml --data-root DATA --output-dir runs/ot/data
#   tar czf .gpu/data.tgz -C runs/ot data
#   OUT=somewhere bash benchmarks/offline_tatoeba_gpu/run_device.sh .gpu/data.tgz
#
# Both systems train side by side on the one GPU (one process each), then fine-tune and evaluate;
# everything lands in $OUT (logs, results.tgz with the report and every evaluation).
set -uo pipefail
DATA_TGZ=${1:?usage: $0 DATA_TGZ}
WORK=${WORK:-/tmp/ot_gpu}
CFG=${CFG:-recipes/configs/offline_tatoeba_gpu.yaml}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=4
mkdir -p "$WORK" "$OUT"
tar xzf "$DATA_TGZ" -C "$WORK"
nvidia-smi -L; python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__)"
start=$(date +%s)
for system in metanmt multinmt; do
  timeout "${LIMIT_S:-470}" python3 -m metanmt experiment --config "$CFG" --data "$WORK/data" --output-dir "$WORK" \
    --systems "$system" ${EXTRA_ARGS:-} --no-progress > "$OUT/$system.log" 2>&1 &
done
wait
echo "both systems done after $(( $(date +%s) - start )) s"
python3 -m metanmt report --runs "$WORK/eval" --output-dir "$WORK/report" > "$OUT/report.log" 2>&1
tar czf "$OUT/results.tgz" -C "$WORK" report eval metanmt/train_log.jsonl multinmt/train_log.jsonl
tail -n 3 "$OUT"/metanmt.log "$OUT"/multinmt.log
