#!/usr/bin/env bash
# MetaNMT vs MultiNMT at the scale of Gu et al. (2018) (recipes/configs/gu2018_europarl.yaml), for machines
# with GPUs and internet: meta-training on Europarl v7 X-en (17 languages) + WMT'17 Ru-En, validation ro/lv,
# fine-tuning on 0/4K/16K/40K/160K English tokens x 5 draws of ro, lv, fi, tr and ko, scored on newstest2016
# (ro), newstest2017 (lv, fi, tr) and the Korean news test set. Transformer base, bf16.
#
#   recipes/gu2018_europarl.sh DATA_ROOT OUT_DIR [NUM_GPUS]     # NUM_GPUS: 1 (default), 2, 4 or 8
#
# DATA_ROOT receives the downloads (tens of GB; the Hugging Face cache keeps a second copy of the WMT data),
# OUT_DIR the prepared data, both trained systems, the fine-tuned models, the evaluations and OUT_DIR/report.
# Re-running the same command continues: finished downloads are kept, prepare reuses its output, training
# resumes from OUT_DIR/{metanmt,multinmt}/last, finished fine-tuning runs and evaluations are skipped.
set -euo pipefail
usage="usage: $0 DATA_ROOT OUT_DIR [NUM_GPUS]"
DATA_ROOT=${1:?$usage}
OUT=${2:?$usage}
NUM_GPUS=${3:-1}
case $NUM_GPUS in
  1 | 2 | 4 | 8) ;;   # each process takes an equal share of the config's meta.meta_batch (8 tasks)
  *) echo "$usage: NUM_GPUS must divide meta.meta_batch (8): 1, 2, 4 or 8, not '$NUM_GPUS'" >&2; exit 2 ;;
esac
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CFG="$REPO/recipes/configs/gu2018_europarl.yaml"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"   # data_scripts/ is run from the source tree
EUROPARL=(bg cs da de el es et fr hu it lt nl pl pt sk sl sv)
LANGS=(ro lv fi tr ko)   # the paper reports all five; ro/lv also select the checkpoints (optimistic)

have() { local f; for f in "$@"; do [[ -e $f ]] || return 1; done; }

# ---- 1. corpora (each skipped when already complete)
mkdir -p "$DATA_ROOT" "$OUT"
missing=()
for lang in "${EUROPARL[@]}"; do
  have "$DATA_ROOT/europarl/europarl-v7.$lang-en.$lang" "$DATA_ROOT/europarl/europarl-v7.$lang-en.en" ||
    missing+=("$lang")
done
if (( ${#missing[@]} )); then
  python -m data_scripts.europarl --out "$DATA_ROOT" --langs "${missing[@]}"
fi

hf_wmt() {   # DATASET LANG SPLIT -> DATA_ROOT/hf/wmt-LANG-en/SPLIT (dataset_info.json is written last)
  local out="$DATA_ROOT/hf/wmt-$2-en/$3"
  have "$out/dataset_info.json" ||
    python -m data_scripts.hf_download --dataset "$1" --name "$2-en" --split "$3" --out "$out"
}
hf_wmt wmt/wmt17 ru train                  # meta-training task 18
hf_wmt wmt/wmt16 ro train; hf_wmt wmt/wmt16 ro test   # test = newstest2016
for lang in lv fi tr; do
  hf_wmt wmt/wmt17 "$lang" train; hf_wmt wmt/wmt17 "$lang" test   # test = newstest2017
done

korean="$DATA_ROOT/korean_parallel/korean-english-news-v1/korean-english-park"
have "$korean".{train,test}.{ko,en} ||
  python -m data_scripts.korean_news --out "$DATA_ROOT" --splits train test

# ---- 2. clean, split, SentencePiece, encode, fine-tuning subsets
metanmt prepare --config "$CFG" --data-root "$DATA_ROOT" --output-dir "$OUT/data"

# ---- 3. MetaNMT and the MultiNMT baseline, data-parallel over NUM_GPUS (same token budget)
# (--mixed_precision bf16 matches the config's train.mixed_precision, which the trainer applies)
launch=(accelerate launch --num_processes "$NUM_GPUS" --num_machines 1 --mixed_precision bf16
        --dynamo_backend no)
if (( NUM_GPUS > 1 )); then launch+=(--multi_gpu); fi
"${launch[@]}" -m metanmt meta-train --config "$CFG" --data "$OUT/data" --output-dir "$OUT/metanmt"
"${launch[@]}" -m metanmt pretrain --config "$CFG" --data "$OUT/data" --output-dir "$OUT/multinmt"

# ---- 4. fine-tune (sizes x draws), evaluate, report; training is complete, so experiment skips it
if (( NUM_GPUS > 1 )); then   # one system per GPU
  pids=()
  gpu=0
  for system in metanmt multinmt; do
    CUDA_VISIBLE_DEVICES=$gpu metanmt experiment --config "$CFG" --data-root "$DATA_ROOT" \
      --output-dir "$OUT" --langs "${LANGS[@]}" --systems "$system" --no-progress \
      > "$OUT/$system.finetune.log" 2>&1 &
    pids+=($!)
    gpu=$((gpu + 1))
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  metanmt report --runs "$OUT/eval" --output-dir "$OUT/report" --train-runs "$OUT/metanmt" "$OUT/multinmt"
else
  metanmt experiment --config "$CFG" --data-root "$DATA_ROOT" --output-dir "$OUT" --langs "${LANGS[@]}" \
    --systems metanmt multinmt   # the paper's two systems (trained above)
fi
echo "report: $OUT/report/report.md"
