"""The real service on 127.0.0.1 over a tiny published root: access control, request checks, answers, metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
from serve_helpers import KEY, auth, make_app, running


@pytest.fixture(scope="module")
def service(roots: dict[str, Path]):
    app, holder = make_app(roots["two"])
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client, holder


def ids(root: Path) -> tuple[list[str], list[str]]:
    cur = root / "current"
    return (pl.read_parquet(cur / "tables/users.parquet")["user_id"].to_list(),
            pl.read_parquet(cur / "tables/items.parquet")["item_id"].to_list())


def test_health_and_readiness_need_no_key(service) -> None:
    client, _ = service
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz").json()
    assert r["ready"] and r["version"] == "0002" and r["reranker"] and r["user_tower"]


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"Authorization": KEY}, 401),  # no scheme
    ({"Authorization": f"Basic {KEY}"}, 401),
    ({"Authorization": "Bearer"}, 401),
    ({"Authorization": "Bearer wrong-key-0123456789abcdef"}, 403),
    ({"Authorization": f"Bearer {KEY}x"}, 403),
    ({"Authorization": f"Bearer {KEY}"}, 200),
    ({"Authorization": f"bearer {KEY}"}, 200),
])
def test_api_keys(service, roots, headers: dict[str, str], status: int) -> None:
    client, _ = service
    users, items = ids(roots["two"])
    for path, body in (("/v1/recommend", {"user_ids": users[:1]}), ("/v1/similar", {"item_ids": items[:1]})):
        r = client.post(path, json=body, headers=headers)
        assert r.status_code == status, r.text
        if status == 401:
            assert r.headers["www-authenticate"] == "Bearer" and "Authorization: Bearer" in r.json()["error"]


@pytest.mark.parametrize(("path", "body", "status", "says"), [
    ("/v1/recommend", b'{"user_ids": ["u0"', 400, "malformed JSON"),
    ("/v1/recommend", b"", 400, "malformed JSON"),
    ("/v1/recommend", b"[1, 2]", 422, "object"),
    ("/v1/recommend", b'{"user_ids": ["u0"], "k": "10"}', 422, "k: Input should be a valid integer"),
    ("/v1/recommend", b'{"user_ids": ["u0"], "k": 10.5}', 422, "k:"),
    ("/v1/recommend", b'{"user_ids": ["u0"], "k": true}', 422, "k:"),
    ("/v1/recommend", b'{"user_ids": "u0"}', 422, "user_ids: Input should be a valid array"),
    ("/v1/recommend", b'{"user_ids": [7]}', 422, "user_ids.0: Input should be a valid string"),
    ("/v1/recommend", b'{"user_ids": ["u0"], "count": 3}', 422, "count: Extra inputs are not permitted"),
    ("/v1/recommend", b'{"k": 3}', 422, "exactly one of 'user_ids'"),
    ("/v1/recommend", b'{"user_ids": ["u0"], "history": ["i1"]}', 422, "exactly one of"),
    ("/v1/recommend", b'{"user_ids": ["u0"], "k": 0}', 422, "k=0: must be in 1..100"),
    ("/v1/recommend", b'{"user_ids": ["u0"], "k": 101}', 422, "k=101: must be in 1..100"),
    ("/v1/recommend", b'{"user_ids": []}', 422, "user_ids: 0 ids; send 1..100"),
    ("/v1/recommend", b'{"history": []}', 422, "history: 0 ids"),
    ("/v1/similar", b'{"item_ids": ["i1"], "k": -1}', 422, "k=-1"),
    ("/v1/similar", b'{"items": ["i1"]}', 422, "item_ids: Field required"),
])
def test_bad_requests_get_4xx_with_a_clear_message(service, path: str, body: bytes, status: int, says: str) -> None:
    client, _ = service
    r = client.post(path, content=body, headers={**auth(), "content-type": "application/json"})
    assert r.status_code == status, r.text
    assert says in r.json()["error"], r.json()
    assert "Traceback" not in r.text


def test_too_many_ids_and_oversized_bodies(service) -> None:
    client, _ = service
    r = client.post("/v1/recommend", json={"user_ids": [f"u{i}" for i in range(101)]}, headers=auth())
    assert r.status_code == 422 and "101 ids" in r.json()["error"]
    big = b'{"user_ids": ["' + b"a" * 70_000 + b'"]}'
    r = client.post("/v1/recommend", content=big, headers=auth())
    assert r.status_code == 413 and "over 65536 bytes" in r.json()["error"]

    def chunks():  # no content-length: counted as it arrives
        yield big[:40_000]
        yield big[40_000:]

    r = client.post("/v1/recommend", content=chunks(), headers=auth())
    assert r.status_code == 413, r.text
    assert client.get("/nowhere").status_code == 404


def test_answers_are_the_recommenders(service, roots) -> None:
    from recsys.api import Recommender

    client, _ = service
    rec = Recommender.load(roots["two"] / "current")
    users, items = ids(roots["two"])
    r = client.post("/v1/recommend", json={"user_ids": [users[3], "nobody", users[3]], "k": 5}, headers=auth())
    assert r.status_code == 200
    body = r.json()
    assert body["version"] == "0002" and body["reranked"] is True
    assert [x["user_id"] for x in body["results"]] == [users[3], "nobody"]
    want = rec.recommend([users[3]], k=5)
    got = body["results"][0]
    assert [i["item_id"] for i in got["items"]] == want["item_id"].to_list() and not got["fallback"]
    np.testing.assert_allclose([i["score"] for i in got["items"]], want["score"].to_numpy(), rtol=1e-5)
    assert body["results"][1]["fallback"] and len(body["results"][1]["items"]) == 5

    r = client.post("/v1/similar", json={"item_ids": [items[2], "no-such-item", items[2]], "k": 4}, headers=auth()).json()
    want = rec.similar_items([items[2]], k=4)
    assert [i["item_id"] for i in r["results"][0]["items"]] == want["similar_item_id"].to_list()
    assert [x["item_id"] for x in r["results"]] == [items[2], "no-such-item"]
    assert r["results"][1]["fallback"] and not r["results"][0]["fallback"] and len(r["results"][1]["items"]) == 4


def test_an_anonymous_history_gets_the_known_users_retrieval(service, roots) -> None:
    """The numpy user tower over a user's own history = that user's exported vector, so the anonymous answer
    equals retrieval-only recommendations for the known user (same seen items excluded)."""
    from recsys.api import Recommender

    client, _ = service
    rec = Recommender.load(roots["two"] / "current", use_ranker=False)
    assert rec.user_tower.carry is not None and rec.user_tower.teacher_carry > 0  # the teacher-carry path too
    hist = rec.tables.history("test").join(rec.tables.users, on="user").join(
        rec.tables.items.select("item", "item_id"), on="item").sort("user", "pos")
    per_user = hist.group_by("user_id", maintain_order=True).agg("item_id")
    checked = 0
    for uid, history in zip(per_user["user_id"].to_list()[:5], per_user["item_id"].to_list()[:5]):
        r = client.post("/v1/recommend", json={"history": [*history, "never-seen"], "k": 6}, headers=auth())
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["reranked"] is False and body["ignored_history_items"] == ["never-seen"]
        got = body["results"][0]
        want = rec.recommend([uid], k=6)
        assert [i["item_id"] for i in got["items"]] == want["item_id"].to_list()
        np.testing.assert_allclose([i["score"] for i in got["items"]], want["score"].to_numpy(), atol=1e-4)
        checked += 1
    assert checked == 5
    r = client.post("/v1/recommend", json={"history": ["never-seen"], "k": 3}, headers=auth()).json()
    assert r["results"][0]["fallback"] and len(r["results"][0]["items"]) == 3


def test_metrics_parse_as_prometheus_text(service, roots) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    client, _ = service
    users, _ = ids(roots["two"])
    client.post("/v1/recommend", json={"user_ids": [users[0]]}, headers=auth())
    client.post("/v1/recommend", json={"user_ids": [users[0]]})
    client.post("/v1/recommend", json={"user_ids": ["nobody-at-all"]}, headers=auth())
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    fam = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert {"recsys_requests", "recsys_request_seconds", "recsys_version_info", "recsys_version_load_seconds",
            "recsys_fallbacks", "recsys_reloads"} <= set(fam)

    def value(name: str, sample: str, **labels: str) -> float:
        return sum(s.value for s in fam[name].samples if s.name == sample and all(s.labels.get(k) == v
                                                                                  for k, v in labels.items()))

    assert value("recsys_requests", "recsys_requests_total", route="/v1/recommend", status="200") >= 2
    assert value("recsys_requests", "recsys_requests_total", route="/v1/recommend", status="401") >= 1
    assert value("recsys_request_seconds", "recsys_request_seconds_count", route="/v1/recommend") >= 3
    assert value("recsys_request_seconds", "recsys_request_seconds_bucket", route="/v1/recommend", le="+Inf") >= 3
    assert value("recsys_version_info", "recsys_version_info", version="0002") == 1
    assert value("recsys_version_load_seconds", "recsys_version_load_seconds") > 0
    assert value("recsys_fallbacks", "recsys_fallbacks_total", route="/v1/recommend") >= 1
    assert value("recsys_reloads", "recsys_reloads_total", outcome="ok") == 1


def test_no_auth_serves_without_a_key(roots) -> None:
    app, _ = make_app(roots["two"], keys=None)
    _, items = ids(roots["two"])
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        r = client.post("/v1/similar", json={"item_ids": items[:1], "k": 3})
        assert r.status_code == 200 and len(r.json()["results"][0]["items"]) == 3
