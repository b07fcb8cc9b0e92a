#!/usr/bin/env bash
# 20-way 1-shot MAML on Omniglot, the first meta-steps on a CPU, with PyTorch's Conv-4 and with the network and
# inner step of Finn et al.'s code (`metanmt fewshot --network finn`); README.md beside this file says why.
# Two runs at a time, one thread each (a 2-core machine); the same seed, so the same training and validation
# episodes in every run.
#
#   bash benchmarks/omniglot_network/run.sh OMNIGLOT_DIR RUNS
set -euo pipefail
DATA=${1:?usage: $0 OMNIGLOT_DIR RUNS}
RUNS=${2:?usage: $0 OMNIGLOT_DIR RUNS}
mkdir -p "$RUNS"
fewshot() {  # fewshot NAME OPTIONS... (a resumed run appends to its log)
  local name=$1; shift
  python3 -m metanmt fewshot --dataset omniglot --data-root "$DATA" --output-dir "$RUNS/$name" --algorithm maml \
    --ways 20 --eval-every 200 --threads 1 --device cpu "$@" >> "$RUNS/$name.log" 2>&1
}
fewshot torch --meta-steps 800 &                    # the published inner step 0.1, on the mean support loss
fewshot torch_lr2 --meta-steps 800 --inner-lr 2.0 & # Finn's inner step (0.1 on a sum of 20 losses), our network
wait
fewshot finn --network finn --meta-steps 800 &      # Finn's network and inner step (2.0 on the mean)
fewshot finn_lr0.1 --network finn --inner-lr 0.1 --meta-steps 600 &
wait
fewshot finn --network finn --meta-steps 1200 --resume
# 2026-11-28, the twenty-first sitting: the same run continued alone, two threads, for two hours of this VM
# (stopped by the time limit, validated and tested where it stopped; finn_resumed/results.json; its folder is
# benchmarks/omniglot/checkpoints/maml_20w1s_finn.tgz, which run_device.sh continues on a GPU)
fewshot finn --network finn --meta-steps 4000 --time-limit 120 --threads 2 --resume
# 2026-11-28, the twenty-second sitting: continued again, 3,481 -> 3,600 alone with two threads (the line above
# with --meta-steps 8000, stopped by hand after its checkpoint at 3,600), then with one thread beside
# head_scale.py: Finn's network with a head of PyTorch's scale, everything else the same (README.md)
fewshot finn --network finn --meta-steps 8000 --time-limit 125 --threads 1 --resume &
python3 "$(dirname "$0")/head_scale.py" "$DATA" "$RUNS/finn_head0.072" --head-std 0.072 --meta-steps 1600 \
  --time-limit 110 --threads 1 >> "$RUNS/finn_head0.072.log" 2>&1 &
wait
# 2026-11-28, the twenty-third sitting: the small-head run continued alone with two threads (README.md)
python3 "$(dirname "$0")/head_scale.py" "$DATA" "$RUNS/finn_head0.072" --head-std 0.072 --meta-steps 6000 \
  --time-limit 130 --threads 2 --resume >> "$RUNS/finn_head0.072.log" 2>&1
# 2026-11-28, the twenty-fourth sitting: continued again from 4,159, alone with two threads (README.md)
python3 "$(dirname "$0")/head_scale.py" "$DATA" "$RUNS/finn_head0.072" --head-std 0.072 --meta-steps 8000 \
  --time-limit 128 --threads 2 --resume >> "$RUNS/finn_head0.072.log" 2>&1
# 2026-11-28, the twenty-fifth sitting: the H200's checkpoint at 17,631 (benchmarks/omniglot/checkpoints/
# maml_20w1s_finn_head.tgz as of commit 21a496b, unpacked into RUNS) continued on this CPU, alone with two
# threads, as plain `--network finn` (the head's draw only matters at step 0); finn_head0.072_after_gpu/
python3 -m metanmt fewshot --dataset omniglot --data-root "$DATA" --output-dir "$RUNS/maml_20w1s_finn_head" \
  --algorithm maml --ways 20 --network finn --resume --threads 2 --time-limit 92 \
  >> "$RUNS/maml_20w1s_finn_head.log" 2>&1
