"""Where screenshots, Playwright traces and hand-over files go: a local folder or Supabase Storage.

`put` returns a link a person can open: a `file://` path locally, a signed, expiring URL from
a private Supabase Storage bucket in production.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from homeowner_dagster import settings


class ArtifactStoreResource(ConfigurableResource):
    """Keeps run artifacts; backend `local` (default) or `supabase`."""

    backend: str = Field(default="local", description="`local` or `supabase`")
    local_dir: str | None = Field(default=None, description="default: .homeowner/artifacts")
    supabase_url: str | None = None
    supabase_key: str | None = Field(default=None, description="service role key, from EnvVar")
    bucket: str = "homeowner-artifacts"
    signed_url_seconds: int = 7 * 24 * 3600

    def _local_root(self) -> Path:
        root = Path(self.local_dir) if self.local_dir else settings.home_dir() / "artifacts"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _supabase_bucket(self):  # noqa: ANN202 - storage3's bucket proxy
        from supabase import create_client

        if not self.supabase_url or not self.supabase_key:
            raise ValueError("artifact store `supabase` needs supabase_url and supabase_key")
        client = create_client(self.supabase_url, self.supabase_key)
        return client.storage, client.storage.from_(self.bucket)

    def put_bytes(
        self, data: bytes, key: str, content_type: str = "application/octet-stream"
    ) -> str:
        """Store `data` under `key` (a relative path) and return a link to it."""
        key = key.lstrip("/")
        if self.backend == "local":
            target = self._local_root() / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            return target.resolve().as_uri()
        if self.backend == "supabase":
            from storage3.exceptions import StorageApiError

            storage, bucket = self._supabase_bucket()
            options = {"content-type": content_type, "upsert": "true"}
            try:
                bucket.upload(key, data, options)
            except StorageApiError as exc:
                if "bucket not found" not in str(exc).lower():
                    raise
                # First artifact in a new project: create the bucket, private (links are signed).
                storage.create_bucket(self.bucket, options={"public": False})
                bucket.upload(key, data, options)
            signed = bucket.create_signed_url(key, self.signed_url_seconds)
            return signed.get("signedURL") or signed.get("signedUrl") or ""
        raise ValueError(f"unknown artifact backend {self.backend!r}")

    def put(self, path: Path, key: str, content_type: str = "application/octet-stream") -> str:
        """Store the file at `path` under `key` and return a link to it."""
        if self.backend == "local":
            target = self._local_root() / key.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            return target.resolve().as_uri()
        return self.put_bytes(Path(path).read_bytes(), key, content_type)
