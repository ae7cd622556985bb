"""The playground page as the app serves it: no key needed, every file it loads there."""

from __future__ import annotations

import re

import pytest

from comfysync import create_app


@pytest.fixture
def client(tmp_path):
    app = create_app(
        {
            "API_KEYS": "k1",
            "WORKFLOWS_DIR": str(tmp_path),
            "OUTPUT_DIR": str(tmp_path / "out"),
            "DATA_DIR": str(tmp_path / "data"),
        }
    )
    return app.test_client()


@pytest.mark.parametrize("path", ["/", "/playground"])
def test_the_page_needs_no_key_and_allows_only_our_own_scripts(client, path: str) -> None:
    response = client.get(path)
    response.close()  # a file response: its handle is closed with it
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert "connect-src 'self'" in policy
    assert client.get("/api/workflows").status_code == 401  # the API itself still asks


def test_every_file_the_page_loads_is_served_with_its_type(client) -> None:
    with client.get("/") as response:
        page = response.get_data(as_text=True)
    wanted = re.findall(r'(?:src|href)="(playground/static/[^"]+)"', page)
    assert any(name.endswith(".js") for name in wanted) and any(
        name.endswith(".css") for name in wanted
    )
    seen = set()
    while wanted:
        name = wanted.pop()
        if name in seen:
            continue
        seen.add(name)
        with client.get(f"/{name}") as response:
            body = response.get_data(as_text=True)
        assert response.status_code == 200, name
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        if name.endswith(".js"):
            # Under nosniff a module script with another type is never run.
            assert "javascript" in response.mimetype, (name, response.mimetype)
            imports = re.findall(r'from "\./([\w.-]+\.js)"', body)
            wanted += [f"playground/static/{module}" for module in imports]
        if name.endswith(".css"):
            assert response.mimetype == "text/css"
    assert {"playground/static/main.js", "playground/static/events.js"} <= seen
