#!/usr/bin/env bash
# Vocabulary-size probe (eleventh sitting, 2026-11-27): MultiNMT on the offline Tatoeba config with 4K / 8K / 16K
# SentencePiece pieces (nothing else changed), side by side for the same wall time (3 processes, 1 thread each,
# on 2 cores), then the unadapted dev BLEU/chrF of the 18 training languages (beam 4, 100 sentences each).
#   bash benchmarks/offline_tatoeba/2026-11-27-vocab/drive.sh ../shared/data runs/vocab   # from the repo root
set -u
DATA_ROOT=${1:?usage: $0 DATA_ROOT WORK}; WORK=${2:?usage: $0 DATA_ROOT WORK}
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p "$WORK"
for v in 4000 8000 16000; do
  sed "s/^    vocab_size: 8000 .*/    vocab_size: $v/" recipes/configs/offline_tatoeba.yaml > "$WORK/v$v.yaml"
  [ -f "$WORK/data$v/manifest.json" ] || metanmt prepare --config "$WORK/v$v.yaml" --data-root "$DATA_ROOT" \
    --output-dir "$WORK/data$v" > "$WORK/prepare$v.log" 2>&1
done
pids=()
for v in 4000 8000 16000; do
  metanmt pretrain --config "$WORK/v$v.yaml" --data "$WORK/data$v" --output-dir "$WORK/multi$v" --no-progress \
    > "$WORK/train$v.log" 2>&1 &
  pids+=($!)
done
sleep "${TRAIN_S:-3300}"
kill -TERM "${pids[@]}"; wait
for v in 4000 8000 16000; do
  python benchmarks/adapted_dev.py --config "$WORK/v$v.yaml" --data "$WORK/data$v" --model "$WORK/multi$v/last" \
    --steps 0 --output "$WORK/dev$v.json" > "$WORK/dev$v.log" 2>&1 &
done
wait
# then: the 4K and 8K runs continued side by side (2 processes, 1 thread each) for 48 more minutes (the same
# `metanmt pretrain` commands resume from last/), scored again into dev${v}_b.json (adapted_dev.py as above)
