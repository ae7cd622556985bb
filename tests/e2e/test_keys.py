"""Keys from API_KEYS_FILE against the real service: limits shared by instances over Redis."""

from __future__ import annotations

import hashlib

from .harness import Simulator

KEY = "csk_shared-limit-key"


def test_a_keys_rate_limit_is_shared_by_two_instances(
    shared_sim: Simulator, redis_url: str, make_gateway, tmp_path
) -> None:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
    keys = tmp_path / "keys.toml"
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    # A day's window: the test never straddles two of them.
    keys.write_text(f'[[keys]]\nname = "bot"\nsha256 = "{digest}"\nrate_limit = "6/day"\n')
    env = {"REDIS_URL": redis_url, "API_KEYS_FILE": str(keys)}
    first, second = make_gateway(shared_sim.url, **env), make_gateway(shared_sim.url, **env)
    auth = {"Authorization": f"Bearer {KEY}"}

    # Six requests spread over both instances use up the key's six; the seventh is
    # refused on either, which per-instance counts (three or four each) never would.
    codes = [g.get("/api/workflows", headers=auth).status_code for g in (first, second) * 3]
    assert codes == [200] * 6
    for gateway in (first, second):
        limited = gateway.get("/api/workflows", headers=auth)
        assert limited.status_code == 429
        assert limited.headers["RateLimit-Remaining"] == "0"
        assert limited.json()["error_type"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) > 0
    # Without the key: 401, never counted.
    assert first.get("/api/workflows").status_code == 401
