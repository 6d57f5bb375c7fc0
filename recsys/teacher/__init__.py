"""The teacher stage: a frozen text model embeds the catalogue; users are pooled from their history; a light
adapter tunes the embeddings to the shop; exact top-K lists are written for the students to distil.

Public entry: ``recsys.teacher.stage.run(cfg, run_dir)``. torch/transformers are imported by the submodules
only, so ``import recsys.teacher.config`` stays light.
"""

from __future__ import annotations

from recsys.teacher.config import TeacherConfig

__all__ = ["TeacherConfig"]
