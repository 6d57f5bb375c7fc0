"""The sequential user tower: causal mask, the numpy forward = the torch forward, and a 2-process DMP run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys.artifacts import RunDir
from recsys.student.batches import ItemFeatures, make_batch
from recsys.student.config import StudentConfig
from recsys.student.sequence import SequenceEncoder, jagged_to_padded


def test_jagged_to_padded_by_hand() -> None:
    values = torch.tensor([[1.0], [2.0], [3.0]])
    got = jagged_to_padded(values, torch.tensor([2, 0, 1]))
    assert got.shape == (3, 2, 1)
    assert got[:, :, 0].tolist() == [[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]]


def test_causal_output_at_i_ignores_later_items() -> None:
    torch.manual_seed(0)
    enc = SequenceEncoder(dim=8, max_len=6, layers=2, heads=2, dropout=0.0).eval()
    x = torch.randn(1, 5, 8)
    later = x.clone()
    later[0, 3:] = torch.randn(2, 8)  # change positions 3 and 4 only
    lengths = torch.tensor([5])
    a, b = enc.sequence(x, lengths), enc.sequence(later, lengths)
    torch.testing.assert_close(a[0, :3], b[0, :3], rtol=0, atol=1e-6)  # positions 0..2 see only 0..2
    assert (a[0, 3:] - b[0, 3:]).abs().max() > 1e-3  # and the change does reach positions 3, 4
    earlier = x.clone()
    earlier[0, 0] = torch.randn(8)
    assert (enc.sequence(earlier, lengths)[0, 2] - a[0, 2]).abs().max() > 1e-3  # an earlier item does count


def test_empty_history_gives_zero_and_padding_is_ignored() -> None:
    torch.manual_seed(1)
    enc = SequenceEncoder(dim=4, max_len=4, layers=1, heads=1, dropout=0.0).eval()
    x = torch.randn(2, 3, 4)
    out = enc(x, torch.tensor([2, 0]))
    assert out[1].abs().max() == 0
    alone = enc(x[:1, :2], torch.tensor([2]))  # the same row without the padded third position
    torch.testing.assert_close(out[:1], alone, rtol=0, atol=1e-6)


def _feats(n: int = 7) -> ItemFeatures:
    rng = np.random.default_rng(0)
    cat_ptr = np.arange(0, 2 * n + 1, 2, dtype=np.int64)
    return ItemFeatures(n_items=n, brand=np.array([0, 1, -1, 2, 0, 1, 2][:n], np.int64), n_brands=3,
                        cat_ptr=cat_ptr, cat_vals=rng.integers(0, 4, 2 * n).astype(np.int64), n_cats=4,
                        text=None, train_count=np.ones(n, np.int64),
                        carry=rng.normal(size=(n, 5)).astype(np.float32), carry_last_n=3, carry_decay=0.5)


@pytest.mark.parametrize("carry", [0.0, 0.5])
def test_numpy_forward_equals_torch(carry: float) -> None:
    from recsys.student.encode import user_tower
    from recsys.student.towers import TwoTower

    torch.manual_seed(0)
    cfg = StudentConfig(dim=6, item_id_dim=8, brand_dim=4, category_dim=4, mlp=(12,), user_tower="sequential",
                        seq_len=4, seq_layers=2, seq_heads=2, use_text=False, teacher_carry=carry)
    feats = _feats()
    towers = TwoTower(cfg=cfg, feats=feats, n_users=3, text_dim=0).eval()
    hists = [[0, 1, 2, 3, 4, 5], [6], [2, 2, 5]]  # the first is longer than seq_len: the last 4 are read
    flat = np.array([i for h in hists for i in h], np.int64)
    ends = np.cumsum([len(h) for h in hists]).astype(np.int64)
    starts = ends - np.array([len(h) for h in hists])
    batch = make_batch(feats=feats, users=np.arange(3), starts=starts, ends=ends, flat=flat,
                       items=np.zeros(0, np.int64), history_len=cfg.history_len, seq_len=cfg.seq_len)
    with torch.no_grad():
        want = towers(batch)[0].numpy()
    tower = user_tower(towers=towers, feats=feats, cfg=cfg)
    got = tower.encode(hists)
    assert got.shape == want.shape == (3, cfg.dim + (5 if carry else 0))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.abs(tower.encode([[0, 1]]) - tower.encode([[1, 0]])).max() > 1e-4  # order matters (not a bag)


def test_saved_tower_round_trips(tmp_path: Path) -> None:
    from recsys.student import seq_user_tower, user_tower
    from recsys.student.encode import user_tower as build
    from recsys.student.towers import TwoTower

    cfg = StudentConfig(dim=6, item_id_dim=8, brand_dim=4, category_dim=4, mlp=(12,), user_tower="sequential",
                        seq_len=4, seq_layers=1, seq_heads=2, use_text=False, teacher_carry=0.5)
    feats = _feats()
    tower = build(towers=TwoTower(cfg=cfg, feats=feats, n_users=3, text_dim=0).eval(), feats=feats, cfg=cfg)
    tensors, meta = seq_user_tower.to_tensors(tower)
    back = user_tower.from_tensors(tensors, meta, path=tmp_path / "t")
    np.testing.assert_array_equal(back.encode([[1, 2, 3]]), tower.encode([[1, 2, 3]]))
    tensors["block.0.qkv.weight"] = tensors["block.0.qkv.weight"][:, :4]
    with pytest.raises(Exception, match="inconsistent shapes"):
        user_tower.from_tensors(tensors, meta, path=tmp_path / "t")


TINY_SEQ = {"dim": 16, "item_id_dim": 16, "brand_dim": 8, "category_dim": 8, "mlp": (32,), "batch_size": 64,
            "epochs": 2, "patience": 5, "eval_batch_size": 256, "teacher_carry": 0.0, "user_tower": "sequential",
            "seq_len": 8, "seq_layers": 1}


def test_sequential_tower_trains_under_two_process_dmp(tiny_run: RunDir, tmp_path: Path) -> None:
    """The EmbeddingCollection is planned and sharded table-wise over 2 gloo processes next to the EBC, trains,
    and the exported numpy tower reproduces the torch tower's test user vectors."""
    from recsys.student.stage import run
    from test_distributed import assert_numpy_tower_matches

    shutil.copytree(tiny_run.root, tmp_path / "two", ignore=shutil.ignore_patterns("student"))
    rd = RunDir(tmp_path / "two")
    rec = run(StudentConfig(nproc=2, sharding="table_wise", **TINY_SEQ), rd, variant="student_kd")
    tables = rec["plan"]["tables"]
    seq = [t for name, t in tables.items() if name.endswith("t_seq_item")]
    assert len(seq) == 1 and seq[0]["sharding_type"] == "table_wise"
    assert {sh[2] for t in tables.values() for sh in t["shards"]} == {"rank:0/cpu", "rank:1/cpu"}
    assert rec["valid"]["ndcg@10"] > 0.05
    assert_numpy_tower_matches(rd)
