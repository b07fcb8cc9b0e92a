#!/bin/bash
# Samples the RSS and peak RSS (kB, /proc/PID/status) of the two training processes of a run directory every
# 30 s, with each one's last logged step and target tokens:  bash rss_sampler.sh RUN_DIR > rss_samples.txt
# (RUN_DIR holds metanmt.pid / multinmt.pid and the runs' metanmt/ and multinmt/ directories).
# Columns: unix time, system, RSS kB, peak RSS kB, step, target tokens.
RUN=${1:?usage: rss_sampler.sh RUN_DIR}
while true; do
  for s in metanmt multinmt; do
    pid=$(cat "$RUN/$s.pid")
    [ -d "/proc/$pid" ] || continue
    rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status"); hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
    step=$(tail -n 1 "$RUN/$s/train_log.jsonl" 2>/dev/null | python3 -c \
      "import sys, json; r = json.loads(sys.stdin.read()); print(r['step'], r['tokens'])" 2>/dev/null)
    echo "$(date +%s) $s $rss $hwm $step"
  done
  sleep 30
done
