"""The artifact store: a local folder by default, a private Supabase bucket with signed links."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from homeowner_dagster.resources.artifacts import ArtifactStoreResource
from homeowner_dagster.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    yield from Sandbox(seed=13)


def test_local_backend_returns_a_file_link(tmp_path: Path) -> None:
    store = ArtifactStoreResource(local_dir=str(tmp_path))
    link = store.put_bytes(b"trace", "runs/r1/trace.zip")
    assert Path(urlparse(link).path).read_bytes() == b"trace"
    source = tmp_path / "shot.png"
    source.write_bytes(b"png")
    assert Path(urlparse(store.put(source, "runs/r1/shot.png")).path).read_bytes() == b"png"


def test_supabase_backend_creates_a_private_bucket_and_returns_a_signed_link(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = sandbox.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # SUPABASE_URL: where the resource reads its address
    store = ArtifactStoreResource(
        backend="supabase",
        supabase_key=env["SUPABASE_SERVICE_ROLE_KEY"],
        bucket="fresh-bucket",
    )
    link = store.put_bytes(b"screenshot", "runs/r2/shot.png", "image/png")
    assert httpx.get(link).content == b"screenshot"
    assert sandbox.storage.buckets["fresh-bucket"]["public"] is False
    again = store.put_bytes(b"newer", "runs/r2/shot.png", "image/png")  # upsert: same key replaced
    assert httpx.get(again).content == b"newer"
    assert sandbox.storage.keys("fresh-bucket") == ["runs/r2/shot.png"]
