#!/usr/bin/env bash
# MAML and first-order MAML on Mini-ImageNet as in Finn et al. 2017 (Ravi & Larochelle split, 84x84,
# 64/16/20 classes): Conv-4 with 32 filters and max-pooling, 5 inner steps of lr 0.01, meta-batch 4,
# 15 queries per class, Adam 1e-3, 60,000 meta-steps, 10 adaptation steps at test, 600 test episodes.
# Published: MAML 5w1s 48.70±1.84, 5w5s 63.11±0.92; first-order 48.07±1.75, 63.15±0.91.
#
# The data is not downloadable by metanmt (ImageNet licence). Put ONE of these in MINIIMAGENET_ROOT:
#   - images/ (60,000 JPEGs named like n0153282900000005.jpg) + train.csv, val.csv, test.csv
#     (header filename,label), from Ravi & Larochelle's split files and the ImageNet images, e.g. made with
#     https://github.com/yaoyao-liu/mini-imagenet-tools;
#   - train/, val/, test/ folders with one sub-folder of images per class (MAML's data/miniImagenet layout);
#   - mini-imagenet-cache-train.pkl, -val.pkl, -test.pkl (learn2learn / Ren et al. 2018 pickles);
#   - miniImageNet_category_split_train_phase_train.pickle, _val.pickle, _test.pickle (MetaOptNet).
# Folders of images are decoded once into the cache ($METANMT_CACHE or ~/.cache/metanmt, about 1.3 GB).
#
# Usage: recipes/miniimagenet_maml.sh MINIIMAGENET_ROOT [OUT_DIR] [extra `metanmt fewshot` options]
set -euo pipefail
root=${1:?usage: $0 MINIIMAGENET_ROOT [OUT_DIR] [extra metanmt fewshot options]}
out=${2:-runs/miniimagenet_maml}
shift $(( $# >= 2 ? 2 : 1 ))

for algorithm in maml fomaml; do
  for shots in 1 5; do
    metanmt fewshot --dataset miniimagenet --data-root "$root" --algorithm "$algorithm" \
      --ways 5 --shots "$shots" --inner-steps 5 --inner-lr 0.01 --meta-batch 4 --queries 15 --hidden 32 \
      --eval-inner-steps 10 --meta-lr 0.001 --meta-steps 60000 --eval-episodes 600 \
      --output-dir "$out/${algorithm}_5w${shots}s" --resume "$@"
  done
done
metanmt fewshot-report "$out" --output "$out/parity.md"
cat "$out/parity.md"
