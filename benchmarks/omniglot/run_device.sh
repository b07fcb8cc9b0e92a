#!/usr/bin/env bash
# The Omniglot MAML parity runs on one GPU, side by side (one process each, the published settings):
# MAML 5-way 1-shot, first-order MAML 5-way 1-shot and MAML 20-way 1-shot. Each meta-trains for MINUTES of
# wall time (`--time-limit`), is validated and checkpointed where it stops, and is tested on 600 episodes;
# the same command with the same RUNS folder continues every run (`--resume`).
#
#   OUT=somewhere bash benchmarks/omniglot/run_device.sh OMNIGLOT_DIR MINUTES [RUNS]
#
# OMNIGLOT_DIR holds images_background.zip and images_evaluation.zip. $OUT gets each run's log and a
# RUN.tgz of its folder (results.json, checkpoint.pt, best.pt), and the GPU tests' log. EXTRA_ARGS go to
# every run (a dry run on a CPU: EXTRA_ARGS="--device cpu --eval-episodes 5 --val-episodes 5"). A run that
# RUNS lacks starts from its committed RUN.tgz in benchmarks/omniglot/checkpoints/ where there is one, so
# the same command continues the runs on a fresh machine. NAMES picks some of the runs (e.g.
# NAMES="maml_20w1s maml_20w1s_finn": the 20-way run not yet at parity, and the same with the network and
# inner step of Finn's code, from its committed CPU checkpoint at meta-step 5,312; maml_20w1s_finn_head is
# that network with its head drawn at PyTorch's scale at step 0, continued from its CPU checkpoint (the
# draw only matters at step 0, so `--network finn --resume` continues it);
# benchmarks/omniglot_network/README.md).
set -uo pipefail
DATA=${1:?usage: $0 OMNIGLOT_DIR MINUTES [RUNS]}
MINUTES=${2:?usage: $0 OMNIGLOT_DIR MINUTES [RUNS]}
RUNS=${3:-/tmp/omniglot_runs}
declare -A SETTINGS=([maml_5w1s]="--algorithm maml --ways 5" [fomaml_5w1s]="--algorithm fomaml --ways 5"
                     [maml_20w1s]="--algorithm maml --ways 20"
                     [maml_20w1s_finn]="--algorithm maml --ways 20 --network finn"
                     [maml_20w1s_finn_head]="--algorithm maml --ways 20 --network finn")
NAMES=${NAMES:-maml_5w1s fomaml_5w1s maml_20w1s}
for name in $NAMES; do
  [ -n "${SETTINGS[$name]:-}" ] || { echo "unknown run '$name' in NAMES; known: ${!SETTINGS[*]}" >&2; exit 2; }
done
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 METANMT_CACHE=${METANMT_CACHE:-/tmp/metanmt_cache}
mkdir -p "$RUNS" "$OUT"
nvidia-smi -L 2>/dev/null; python3 -c "import torch; print('torch', torch.__version__)"
# the suite's GPU tests first (CUDA-graph steps equal plain ones; runs on the device), then decode the images
# once, before three processes would each try to
python3 -m pytest -q -p no:cacheprovider tests/test_meta_graphs.py tests/test_images_fewshot.py \
  > "$OUT/device_tests.log" 2>&1; tail -n 3 "$OUT/device_tests.log"
python3 -c "from metanmt.tasks.images.omniglot import load_omniglot; load_omniglot('$DATA', 28)"

fewshot() {  # fewshot NAME OPTIONS...
  local name=$1; shift
  python3 -m metanmt fewshot --dataset omniglot --data-root "$DATA" --output-dir "$RUNS/$name" \
    --time-limit "$MINUTES" --resume --threads 2 "$@" ${EXTRA_ARGS:-} > "$OUT/$name.log" 2>&1
  tar czf "$OUT/$name.tgz" -C "$RUNS" "$name"
}
for name in $NAMES; do
  seed=benchmarks/omniglot/checkpoints/$name.tgz
  [ -d "$RUNS/$name" ] || [ ! -f "$seed" ] || tar xzf "$seed" -C "$RUNS"
done
start=$(date +%s)
for name in $NAMES; do
  fewshot "$name" ${SETTINGS[$name]} &
done
wait
echo "all runs done after $(( $(date +%s) - start )) s"
tail -n 2 "$OUT"/*.log
