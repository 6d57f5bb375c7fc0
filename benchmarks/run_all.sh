#!/usr/bin/env bash
# Re-run every benchmark and regenerate benchmarks/README.md. Takes ~45-60 min on an idle 2-core CPU
# (bench_student.py alone ~30 min: 5M-row tables, 15 variants twice; 29 min at load 18).
#
#   bash benchmarks/run_all.sh              # everything
#   bash benchmarks/run_all.sh data e2e     # only these (names = benchmarks/bench_<name>.py)
#   PYTHON=/path/to/python bash benchmarks/run_all.sh
#
# Figures are ratios against baselines measured in the same run, but absolute times still move with
# machine load: run it on an idle machine (the load average is recorded in every JSON file).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
ALL=(data growth index teacher llm_teacher student parts e2e serve)  # llm_teacher skips itself without --llm extras
SEL=("$@")
[ ${#SEL[@]} -eq 0 ] && SEL=("${ALL[@]}")
failed=()
for name in "${SEL[@]}"; do
  script="benchmarks/bench_${name}.py"
  if [ ! -f "$script" ]; then echo "skip $name: no $script"; continue; fi
  echo "=== $name  ($(date -u +%H:%M:%SZ), load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null))"
  if ! "$PY" "$script"; then failed+=("$name"); echo "!!! $name failed (its JSON, if any, is from an earlier run)"; fi
done
"$PY" benchmarks/report.py
if [ ${#failed[@]} -gt 0 ]; then echo "failed: ${failed[*]}"; exit 1; fi
