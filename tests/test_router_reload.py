"""Reload in one process (router/app.py `apply_config`), against real test upstreams: every
section of a valid config takes effect at once (classifier header, detectors, threshold,
the model file itself), or the reload is refused as a whole with one line naming the
section; replaced pools close with their last request; upstream health carries over."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from router.app import ReloadRefused, apply_config, config_digest
from router.config import RouterConfig, load_config
from router.schema_io import load_model
from router.server import Reloader
from tests.fixtures.router_env import RouterEnv, chat, deep_update
from tests.fixtures.waiting import eventually

PUBLIC = "What is the capital of France?"
CARD = "Please charge card 4111 1111 1111 1111 for the order."


def _reload(env: RouterEnv, tmp: Path, **changes: object) -> RouterConfig:
    """Put `env.config` with `changes` in force, as SIGHUP would; returns the new config."""
    data = deep_update(env.config.model_dump(mode="json", exclude_none=True), changes)
    new = load_model(RouterConfig, tmp / "router.yaml", data=data)
    env.router.call(apply_config(env.router.server.config.app, new))
    env.config = new
    return new


def _route(env: RouterEnv, text: str = PUBLIC, **headers: str) -> tuple[str, str]:
    r = env.client.post("/v1/chat/completions", json=chat(text), headers=headers)
    assert r.status_code == 200, r.text
    return r.headers["x-route"], r.headers["x-sensitivity"]


@pytest.fixture
def env(tmp_path):
    with RouterEnv.start(tmp_path) as env:
        assert eventually(lambda: env.client.get("/readyz").status_code == 200, 10)
        yield env


def test_classifier_header_and_detectors_take_effect_at_once(env, tmp_path):
    assert _route(env, **{"X-Data-Classification": "confidential"}) == ("onprem", "confidential")
    assert _route(env, CARD)[1] == "confidential"
    new = _reload(env, tmp_path, classifier={"header": "X-Other-Class", "detectors": ["email"]})
    assert env.client.get("/readyz").json()["config"] == config_digest(new)
    for _ in range(10):
        assert _route(env, **{"X-Other-Class": "confidential"}) == ("onprem", "confidential")
        assert _route(env, **{"X-Data-Classification": "confidential"}) == ("sagemaker", "public")
        assert _route(env, CARD) == ("sagemaker", "public")  # the card detector is off now


def test_a_restart_only_change_is_refused_whole_naming_the_setting(env, tmp_path):
    before = env.client.get("/readyz").json()["config"]
    data = deep_update(
        env.config.model_dump(mode="json", exclude_none=True),
        {"listen": {"port": 9999}, "classifier": {"header": "X-Other-Class"}},
    )
    new = load_model(RouterConfig, tmp_path / "router.yaml", data=data)
    with pytest.raises(ReloadRefused, match=r"^listen\.port: cannot change at run time"):
        env.router.call(apply_config(env.router.server.config.app, new))
    assert env.client.get("/readyz").json()["config"] == before  # nothing of it in force
    assert _route(env, **{"X-Other-Class": "confidential"}) == ("sagemaker", "public")


def test_client_timeouts_need_a_restart_upstream_bounds_rebuild_the_pools(env, tmp_path):
    data = deep_update(
        env.config.model_dump(mode="json", exclude_none=True),
        {"timeouts": {"client_header_s": 3.0}},
    )
    new = load_model(RouterConfig, tmp_path / "router.yaml", data=data)
    with pytest.raises(ReloadRefused, match=r"^timeouts\.client_header_s: cannot change"):
        env.router.call(apply_config(env.router.server.config.app, new))
    old = env.app_state.handler.pools["onprem"]
    _reload(env, tmp_path, timeouts={"upstream_first_byte_s": 7.0})
    fresh = env.app_state.handler.pools["onprem"]
    assert fresh is not old and fresh.timeouts.upstream_first_byte_s == 7.0
    assert _route(env) == ("sagemaker", "public")


def test_model_threshold_and_file_are_reloaded_off_the_request_path(tmp_path, tiny_classifier_dir):
    model = {"path": str(tiny_classifier_dir / "model.int8.onnx"), "threshold": 0.99999}
    with RouterEnv.start(tmp_path, overrides={"classifier": {"model": model}}) as env:
        assert eventually(lambda: env.client.get("/readyz").status_code == 200, 10)
        assert _route(env) == ("sagemaker", "public")  # the head leans confidential: ≈ 0.9975
        _reload(env, tmp_path, classifier={"model": {"threshold": 0.5}})
        assert _route(env) == ("onprem", "confidential")

        handler = env.app_state.handler
        loaded = handler.classifier
        os.utime(tiny_classifier_dir / "model.int8.onnx")  # the same file, replaced in place
        _reload(env, tmp_path)
        assert handler.classifier is not loaded and handler.classifier.ready
        assert eventually(lambda: loaded.batcher.executor._shutdown)  # the old one closed

        missing = {"model": {"path": str(tmp_path / "nowhere.onnx")}}
        with pytest.raises(ReloadRefused, match=r"^classifier\.model: .*nowhere\.onnx"):
            _reload(env, tmp_path, classifier=missing)
        assert handler.classifier.ready and _route(env) == ("onprem", "confidential")


def test_replaced_pools_close_with_their_last_request_not_the_deadline(env, tmp_path):
    env.onprem[0].latency_s = env.onprem[1].latency_s = 1.0
    old = env.app_state.handler.pools["onprem"]
    answers: list[int] = []
    slow = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                env.router.url + "/v1/chat/completions",
                json=chat(PUBLIC),
                headers={"X-Data-Classification": "confidential"},
                timeout=30,
            ).status_code
        )
    )
    slow.start()
    assert eventually(lambda: sum(f.in_flight for f in env.onprem) == 1)
    _reload(env, tmp_path, limits={"deadline_s": 60}, onprem={"max_connections": 7})
    assert env.app_state.handler.pools["onprem"] is not old
    assert old._checker is not None and not old._checker.done()  # its request still runs
    slow.join(30)
    assert answers == [200]  # the request in flight finished on the old pool
    assert eventually(lambda: old._checker.done(), 2)  # closed with it, not after 60 s


def test_upstream_health_carries_over_a_reload(env, tmp_path):
    env.onprem[0].healthy = False
    pool = env.app_state.handler.pools["onprem"]
    assert eventually(lambda: not pool.members[0].healthy)
    _reload(env, tmp_path, onprem={"max_connections": 9})
    fresh = env.app_state.handler.pools["onprem"]
    assert fresh is not pool
    assert [m.healthy for m in fresh.members] == [False, True]  # still out, until checks pass
    env.onprem[0].healthy = True
    assert eventually(lambda: fresh.members[0].healthy)


def test_a_reload_storm_leaves_no_pools_behind(env, tmp_path):
    stop = time.monotonic() + 3
    statuses: list[int] = []

    def load() -> None:
        with httpx.Client(base_url=env.router.url, timeout=30) as client:
            while time.monotonic() < stop:
                r = client.post("/v1/chat/completions", json=chat(PUBLIC),
                                headers={"X-Data-Classification": "confidential"})  # fmt: skip
                statuses.append(r.status_code)

    clients = [threading.Thread(target=load) for _ in range(4)]
    for t in clients:
        t.start()
    pools = []
    for n in range(20):
        _reload(env, tmp_path, onprem={"max_connections": 10 + n})
        pools.append(env.app_state.handler.pools["onprem"])
    for t in clients:
        t.join(30)
    assert statuses and set(statuses) == {200}
    live = env.app_state.handler.pools["onprem"]
    assert eventually(lambda: all(p._checker.done() for p in pools if p is not live), 2)
    assert not env.app_state.reloads.retired


def test_a_policy_reloads_whole_and_a_bad_one_is_refused_keeping_the_old(env, tmp_path, caplog):
    """SIGHUP's path (server.Reloader: load the file, apply it): new terms take effect at
    once; a file with one bad entry is refused with a line naming it, the old policy stays."""
    path = tmp_path / "router.yaml"
    data = env.config.model_dump(mode="json", exclude_none=True)

    def write(policy: dict) -> None:
        path.write_text(yaml.safe_dump(deep_update(data, {"classifier": {"sensitivity": policy}})))

    app = env.router.server.config.app
    reloader = Reloader(lambda: load_config(path), lambda new: apply_config(app, new))
    write({"terms": [{"name": "codenames", "words": ["Falcon"]}]})
    assert env.router.call(reloader.reload())
    assert _route(env, "How is Falcon going?") == ("onprem", "confidential")
    assert _route(env, "How is Osprey going?") == ("sagemaker", "public")
    write({"terms": [{"name": "codenames", "words": ["Osprey"]}],
           "patterns": [{"name": "employee_id", "regex": "EMP-(\\d{6}"}]})  # fmt: skip
    with caplog.at_level("ERROR", logger="edgepack.router"):
        assert not env.router.call(reloader.reload())
    assert "classifier.sensitivity.patterns.0: employee_id: regex" in reloader.last_error
    assert "keeping the old config" in caplog.text
    for _ in range(5):
        assert _route(env, "How is Falcon going?") == ("onprem", "confidential")
        assert _route(env, "How is Osprey going?") == ("sagemaker", "public")
