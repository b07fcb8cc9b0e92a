#!/usr/bin/env bash
# Prototypical Networks on Omniglot as in Snell et al. 2017 (MAML/Vinyals protocol, 28x28, rotations):
#   Conv-4 with 64 filters (64-d embedding), 60-way training episodes with 5 queries per class and as many
#   shots as at test, Adam 1e-3 halved every 2000 episodes; the best model on validation episodes is tested
#   on 600 episodes. Snell et al. stopped early on validation loss; 20,000 episodes is this recipe's choice.
# Published: 5w1s 98.8, 20w1s 96.0.
#
# Usage: recipes/omniglot_protonet.sh OMNIGLOT_ROOT [OUT_DIR] [extra `metanmt fewshot` options]
set -euo pipefail
root=${1:?usage: $0 OMNIGLOT_ROOT [OUT_DIR] [extra metanmt fewshot options]}
out=${2:-runs/omniglot_protonet}
shift $(( $# >= 2 ? 2 : 1 ))

for shots in 1 5; do
  # one model per shot count, trained on 60-way episodes and tested on 5-way and 20-way episodes
  metanmt fewshot --dataset omniglot --protocol maml --data-root "$root" --algorithm protonet \
    --ways 5 --shots "$shots" --train-ways 60 --queries 5 --meta-lr 0.001 --lr-schedule step --lr-step-every 2000 \
    --meta-steps 20000 --eval-episodes 600 --output-dir "$out/protonet_5w${shots}s" --resume "$@"
  metanmt fewshot --dataset omniglot --protocol maml --data-root "$root" --algorithm protonet \
    --ways 20 --shots "$shots" --train-ways 60 --eval-episodes 600 "$@" \
    --meta-steps 0 --init-from "$out/protonet_5w${shots}s/best.pt" --output-dir "$out/protonet_20w${shots}s"
done
metanmt fewshot-report "$out" --output "$out/parity.md"
cat "$out/parity.md"
