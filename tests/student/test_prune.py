"""Pruning: magnitude masks keep exactly the largest |w|, a dropped id row gives the id-off vector, the numpy
towers equal the torch student, and the compact export round-trips and is refused when altered."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from recsys.artifacts import RunDir
from recsys.contracts import ArtifactError
from recsys.contracts import student as S
from recsys.student import prune as P
from recsys.student.item_tower import ItemTower
from recsys.student.user_tower import UserTower


def test_mask_keeps_exactly_the_largest_magnitudes() -> None:
    w = np.array([[0.1, -3.0, 2.0], [0.5, -0.2, 4.0]], np.float32)
    assert P.magnitude_mask(w, sparsity=0.5).tolist() == [[False, True, True], [False, False, True]]
    assert P.magnitude_mask(w, sparsity=0.8).tolist() == [[False, False, False], [False, False, True]]  # 6-5=1 kept
    assert P.magnitude_mask(w, sparsity=0.0).all()
    ties = np.array([1.0, -1.0, 1.0, 0.5])  # equal |w|: the earlier position wins, still exactly 2 kept
    assert P.magnitude_mask(ties, sparsity=0.5).tolist() == [True, True, False, False]


def test_global_scope_uses_one_threshold() -> None:
    big, small = np.array([[10.0, 9.0]]), np.array([[1.0, 2.0]])
    g = P.dense_masks([big, small], sparsity=0.5, scope="global")
    assert g[0].tolist() == [[True, True]] and g[1].tolist() == [[False, False]]
    per = P.dense_masks([big, small], sparsity=0.5, scope="layer")
    assert per[0].tolist() == [[True, False]] and per[1].tolist() == [[False, True]]


def _towers() -> tuple[UserTower, tuple, tuple]:
    """3 items (brand of item 2 unknown), 2-d id rows, 1-d brand/category rows, a 1-layer MLP of each tower."""
    t_item = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]], np.float32)
    user = UserTower(t_item=t_item, t_brand=np.array([[1.0], [-1.0]], np.float32),
                     t_cat=np.array([[0.5], [2.0]], np.float32), item_brand=np.array([0, 1, -1]),
                     cat_ptr=np.array([0, 1, 3, 3]), cat_vals=np.array([0, 0, 1]),
                     layers=((np.array([[1.0, 1.0, 0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0, 0.0, 1.0]],
                                       np.float32), np.zeros(2, np.float32)),),
                     history_len=5, recent_len=1, user_id_dim=0)
    item_layers = ((np.array([[1.0, 0.5, 1.0, 1.0, 2.0], [-1.0, 1.0, 0.0, 1.0, 0.0]], np.float32),
                    np.array([0.1, 0.2], np.float32)),)
    proj = (np.array([[1.0, -1.0]], np.float32), np.array([0.0], np.float32))
    return user, item_layers, proj


def test_a_dropped_row_is_the_id_off_vector() -> None:
    user, item_layers, proj = _towers()
    text = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    count = np.array([0, 1, 3])  # item 0: cold; item 1: rare (dropped at min_count=2); item 2 kept
    model = P.prune(user=user, item_layers=item_layers, text_proj=proj, train_count=count, sparsity=0.0,
                    scope="layer", min_count=2)
    assert model.id_rows.tolist() == [2] and model.keep_id.tolist() == [False, False, True]
    ut, it = model.towers(text=text, carry=None)
    got = it.encode(keep_id=model.keep_id.astype(np.float32))
    full = ItemTower(t_item=user.t_item, t_brand=user.t_brand, t_cat=user.t_cat, item_brand=user.item_brand,
                     cat_ptr=user.cat_ptr, cat_vals=user.cat_vals, layers=item_layers, text_proj=proj, text=text)
    np.testing.assert_allclose(got[1], full.encode(keep_id=np.array([1.0, 0.0, 1.0]))[1], atol=1e-6)  # id off
    np.testing.assert_allclose(got[2], full.encode(keep_id=np.ones(3))[2], atol=1e-6)  # kept row: unchanged
    # item 1 by hand: [0, 0 | brand 1: -1 | mean cat rows 0, 1: 1.25 | proj(text) = -1] -> W x + b -> L2
    x = np.array([0.0, 0.0, -1.0, 1.25, -1.0])
    h = item_layers[0][0] @ x + item_layers[0][1]
    np.testing.assert_allclose(got[1], h / np.linalg.norm(h), atol=1e-6)
    # a user who saw items 1 and 2: the id bags hold item 2 only; brand/category bags both items
    hist = np.array([1, 2])
    v = ut.encode([hist])[0]
    feats = np.array([3.0, 1.0, 3.0, 1.0, -1.0, (2.0 * 0.5 + 2.0) / 3])  # id mean, recent id, brand, cats
    h = user.layers[0][0] @ feats
    np.testing.assert_allclose(v, h / np.linalg.norm(h), atol=1e-6)
    np.testing.assert_allclose(ut.encode_csr(np.array([0, 2, 2, 3]), np.array([1, 2, 0])),
                               ut.encode([[1, 2], [], [0]]), atol=1e-6)  # vectorised == per user (empty too)


def test_compact_form_round_trips_and_is_smaller_when_sparse() -> None:
    user, item_layers, proj = _towers()
    model = P.prune(user=user, item_layers=item_layers, text_proj=proj, train_count=np.array([0, 1, 3]),
                    sparsity=0.5, scope="global", min_count=1)
    tensors, meta = P.to_tensors(model)
    back = P.from_tensors(tensors, meta)
    for (w, b), (w2, b2) in zip(model.matrices().values(), back.matrices().values()):
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)
    np.testing.assert_array_equal(back.full_table(), model.full_table())
    assert back.keep_id.tolist() == model.keep_id.tolist() and back.id_rows.tolist() == [1, 2]
    kept = sum(int((w != 0).sum()) for w, _ in model.matrices().values())
    assert kept == 12  # 24 weights (user 12 + item 10 + text 2), half kept
    assert tensors["item_mlp.0.values"].size + tensors["user_mlp.0.values"].size + \
        tensors["text_proj.values"].size == 12
    bad = dict(tensors, **{"item_mlp.0.values": tensors["item_mlp.0.values"][:-1]})
    with pytest.raises(ValueError, match="item_mlp.0"):
        P.from_tensors(bad, meta)


def test_stored_model_is_verified_on_read(tmp_path) -> None:
    user, item_layers, proj = _towers()
    model = P.prune(user=user, item_layers=item_layers, text_proj=proj, train_count=np.array([0, 1, 3]),
                    sparsity=0.5, scope="layer", min_count=2)
    rd = RunDir(tmp_path / "run")
    tensors, meta = P.to_tensors(model)
    vec = np.eye(3, dtype=np.float32)
    outs = S.write_pruned(layout=rd.layout, variant="student_kd", tensors=tensors, metadata=meta, items=vec,
                          users_valid=vec[:2], users_test=vec[:2], meta={"sizes": P.size_bytes(model)})
    rd.record(S.prune_stage_of("student_kd"), key="k", config={}, outputs=outs, seconds=0.0)
    back = P.from_tensors(*S.read_pruned_model(layout=rd.layout, variant="student_kd"))
    np.testing.assert_array_equal(back.full_table(), model.full_table())
    _, i = S.read_pruned_vectors(layout=rd.layout, variant="student_kd", split="test", n_users=2, n_items=3)
    np.testing.assert_array_equal(i, vec)
    p = rd.layout.pruned_model("student_kd")
    data = bytearray(p.read_bytes())
    data[-1] ^= 0x01  # one bit of the last stored value
    p.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        S.read_pruned_model(layout=rd.layout, variant="student_kd")


# ------------------------------------------------------------------ against the torch student, through the stage
@pytest.fixture(scope="module")
def trained(tiny_run: RunDir, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    from recsys.student import stage as student
    from recsys.student.config import StudentConfig

    cfg = StudentConfig(dim=16, item_id_dim=16, brand_dim=8, category_dim=8, mlp=(32,), batch_size=32, epochs=1,
                        patience=5, eval_batch_size=256, nproc=1, use_text=True, lambda_emb=0.0, lambda_rank=0.0,
                        teacher_carry=0.5, quantize_int8=True)
    rd = RunDir(shutil.copytree(tiny_run.root, tmp_path_factory.mktemp("prune") / "run"))
    student.run(cfg, rd, variant="student_kd")
    return rd


@pytest.mark.slow
def test_unpruned_numpy_towers_equal_the_torch_export(trained: RunDir) -> None:
    from recsys.student import prune_stage
    from recsys.student.config import PruneConfig

    prune_stage.run(PruneConfig(dense_sparsity=0.0, min_item_count=0), trained)
    lay, t = trained.layout, S.read_meta(layout=trained.layout, variant="student_kd")
    from recsys.data.tables import load_tables

    tables = load_tables(lay)
    for split in ("valid", "test"):
        pu, pi = S.read_pruned_vectors(layout=lay, variant="student_kd", split=split, n_users=tables.n_users,
                                       n_items=tables.n_items)
        u = S.read_user_vectors(layout=lay, variant="student_kd", split=split, n_users=tables.n_users)
        i = S.read_item_vectors(layout=lay, variant="student_kd", n_items=tables.n_items)
        np.testing.assert_allclose(pi, i, atol=2e-5)
        np.testing.assert_allclose(pu, u, atol=2e-5)
    assert pi.shape[1] == t["dim"]


@pytest.mark.slow
def test_pruned_export_is_verified_and_reported(trained: RunDir) -> None:
    from recsys.eval.systems import ORDER, sizes
    from recsys.student import prune_stage
    from recsys.student.config import PruneConfig

    cfg = PruneConfig(dense_sparsity=0.8, min_item_count=3)
    rec = prune_stage.run(cfg, trained)
    assert prune_stage.run(cfg, trained)["finished_at"] == rec["finished_at"]  # unchanged inputs: skipped
    lay = trained.layout
    size = sizes(lay)
    assert size["pruned"]["dense"] < 0.5 * size["fp32"]["dense"] and size["id_rows"]["kept"] < size["id_rows"]["of"]
    assert S.has_pruned(lay, variant="student_kd")  # the eval stage's row, right after int8 in the report
    assert ORDER.index("student_kd_pruned") == ORDER.index("student_kd_int8") + 1
    tensors, meta = S.read_pruned_model(layout=lay, variant="student_kd")
    model = P.from_tensors(tensors, meta)
    assert sum(int((w != 0).sum()) for w, _ in model.matrices().values()) == rec["dense_kept"]
    p = lay.pruned_model("student_kd")
    data = bytearray(p.read_bytes())
    data[-1] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        S.read_pruned_model(layout=lay, variant="student_kd")
    assert not trained.is_fresh(S.prune_stage_of("student_kd"), prune_stage.input_key(cfg, trained,
                                                                                         variant="student_kd"))
    prune_stage.run(dataclasses.replace(cfg), trained)  # a damaged output is rebuilt, not served
    S.read_pruned_model(layout=lay, variant="student_kd")
