"""The sequential user tower's encoder: causal self-attention over a user's last items (SASRec-style).

Input: the history item vectors of a TorchRec ``EmbeddingCollection`` (one vector per position, not pooled) as a
jagged batch, oldest first. Each position gets a learned embedding of its *age* (0 = the most recent item), so
the last position, whose output is the user, always sees the same position vector for "the item just bought".
Then ``layers`` pre-LN blocks::

    x = x + drop(attn(ln1(x)))      causal: position i attends to positions 0..i only
    x = x + drop(ffn(ln2(x)))       Linear(d, 2d) - ReLU - Linear(2d, d)

and a final LayerNorm; the output is the last real position's vector, zeros for an empty history (what
TorchRec's MEAN pooling gives an empty bag). ``recsys.student.seq_user_tower`` is the same forward in numpy.
Kang & McAuley 2018, "Self-Attentive Sequential Recommendation".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def jagged_to_padded(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(T, D) values of B rows with ``lengths`` (B,) -> (B, L, D) zero-padded on the right, L = max(1, max len)."""
    b = lengths.numel()
    width = max(1, int(lengths.max())) if b else 1
    out = values.new_zeros((b, width, values.shape[1]))
    if values.shape[0]:
        row = torch.repeat_interleave(torch.arange(b), lengths)
        starts = torch.cumsum(lengths, 0) - lengths
        col = torch.arange(values.shape[0]) - starts[row]
        out = out.index_put((row, col), values)
    return out


class CausalBlock(nn.Module):
    """One pre-LN transformer block with a causal mask. ``forward(x (B, L, D))`` -> (B, L, D)."""

    def __init__(self, *, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"student.seq_heads={heads} must divide the sequence width {dim} (student.item_id_dim)")
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ff1, self.ff2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
        self.drop = nn.Dropout(dropout)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)  # (B, H, L, L)
        future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        att = scores.masked_fill(future, float("-inf")).softmax(-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attend(self.ln1(x)))
        return x + self.drop(self.ff2(F.relu(self.ff1(self.ln2(x)))))


class SequenceEncoder(nn.Module):
    """Causal self-attention over (B, L, D) item vectors with ``lengths`` (B,) -> (B, D) last-position output.

    Args:
        max_len: the longest history read (``student.seq_len``); one age embedding per position.
    """

    def __init__(self, *, dim: int, max_len: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.max_len = max_len
        self.pos = nn.Embedding(max_len, dim)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.blocks = nn.ModuleList(CausalBlock(dim=dim, heads=heads, dropout=dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def sequence(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Every position's output (B, L, D); position i depends on positions 0..i and the row's length only."""
        n = x.shape[1]
        if n > self.max_len:
            raise ValueError(f"a history of {n} items is longer than student.seq_len={self.max_len}")
        age = (lengths[:, None] - 1 - torch.arange(n)[None, :]).clamp(min=0)  # pads (negative age) -> 0, unused
        h = self.drop(x + self.pos(age))
        for block in self.blocks:
            h = block(h)
        return self.ln(h)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.sequence(x, lengths)
        last = h[torch.arange(h.shape[0]), (lengths - 1).clamp(min=0)]
        return last * (lengths > 0).to(last.dtype)[:, None]
