#!/usr/bin/env bash
# MAML on Omniglot as in Finn et al. 2017 (MAML/Vinyals protocol: 1200 training characters, rotations, 28x28):
#   5-way:  1 inner step of lr 0.4, meta-batch 32;   20-way: 5 inner steps of lr 0.1, meta-batch 16;
#   Adam 1e-3, 60,000 meta-steps, 10 adaptation steps at test, 600 test episodes.
# Published: 5w1s 98.7±0.4, 5w5s 99.9±0.1, 20w1s 95.8±0.3, 20w5s 98.9±0.2.
#
# Usage: recipes/omniglot_maml.sh OMNIGLOT_ROOT [OUT_DIR] [extra `metanmt fewshot` options, e.g. --algorithm fomaml]
#   OMNIGLOT_ROOT holds images_background.zip and images_evaluation.zip (or their extracted folders).
# Re-running continues every setting from its last checkpoint (--resume).
set -euo pipefail
root=${1:?usage: $0 OMNIGLOT_ROOT [OUT_DIR] [extra metanmt fewshot options]}
out=${2:-runs/omniglot_maml}
shift $(( $# >= 2 ? 2 : 1 ))

for ways in 5 20; do
  if [ "$ways" = 5 ]; then inner="--inner-steps 1 --inner-lr 0.4 --meta-batch 32"
  else inner="--inner-steps 5 --inner-lr 0.1 --meta-batch 16"; fi
  for shots in 1 5; do
    # shellcheck disable=SC2086
    metanmt fewshot --dataset omniglot --protocol maml --data-root "$root" --algorithm maml \
      --ways "$ways" --shots "$shots" $inner --eval-inner-steps 10 --meta-lr 0.001 \
      --meta-steps 60000 --eval-episodes 600 --output-dir "$out/maml_${ways}w${shots}s" --resume "$@"
  done
done
metanmt fewshot-report "$out" --output "$out/parity.md"
cat "$out/parity.md"
