"""Artifact contracts as code: the only place that names, writes and verifies a run-directory file.

One small module per artifact family, each with typed keyword-only ``write_*`` / ``read_*``:

- ``layout``      every file name (``Layout``) and the run manifest's name
- ``tables``      tables/ (items, users, interactions, quarantine, splits) -> ``Tables``
- ``teacher``     teacher/ item and user embeddings (safetensors + pooling metadata), top-K lists
- ``student``     student/<variant>/ vectors, int8 + scales, meta.json, train log
- ``lists``       ranked lists ``(user, item, score, rank)``: index candidates, reranked lists, teacher top-K
- ``ranker``      rank/model.txt (LightGBM text, verified before LightGBM parses it), feature importances
- ``index``       index/index.faiss + its manifest (verified before faiss parses it), ANN trade-off points
- ``baselines``   baselines/ popularity counts and ALS factors
- ``checkpoints`` student/<variant>/ckpt/*.pt (digest embedded in the file, written atomically)
- ``manifests``   the digest each stage recorded in ``manifest.json``, looked up for a reader
- ``report``      metrics.json, report.md, plots, gate.json, cold-start results

Every ``read_*`` checks, before any third-party parser sees the bytes, the sha256 that the writing stage
recorded in ``manifest.json``; then dtype, shape and cross-file consistency (one vector row per catalogue
item / user, ids a permutation of ``0..N-1``, finite values). Any failure is one ``ArtifactError`` whose
message names the file, says what is wrong and what to do.

Imports stay light (numpy, polars, safetensors, json); torch, faiss and LightGBM are the callers' business.
"""

from __future__ import annotations

from recsys.contracts.errors import ArtifactError, StageError, problem

__all__ = ["ArtifactError", "StageError", "problem"]
