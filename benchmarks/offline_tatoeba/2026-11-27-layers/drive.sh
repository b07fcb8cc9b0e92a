#!/usr/bin/env bash
# Seventeenth sitting: the shipped offline config's MetaNMT with the inner loop on the transformer layers only
# (layers.yaml = recipes/configs/offline_tatoeba.yaml + meta.fast_params ["model.*.layers.*"]), one thread, on the
# prepared 8K-piece data (DATA: `metanmt prepare --config recipes/configs/offline_tatoeba.yaml`), against the
# shipped run's MetaNMT (../2026-11-27-verdict-22.8M/metanmt_train_log.jsonl.gz: same config, seed and data).
# It resumes where it stopped; compare at equal tokens with
#   python benchmarks/curves.py ../2026-11-27-verdict-22.8M/metanmt_train_log.jsonl.gz WORK/metanmt
#   bash drive.sh DATA WORK
set -eu
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
metanmt meta-train --config $(dirname $(realpath $0))/layers.yaml --data $1 --output-dir $2/metanmt --no-progress
