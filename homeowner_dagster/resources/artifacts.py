"""Where screenshots, Playwright traces and hand-over files go: a local folder or Supabase Storage.

`put` returns a link a person can open: a `file://` path locally, a signed, expiring URL from
a private Supabase Storage bucket in production. Links live `HOMEOWNER_SIGNED_URL_TTL` (24 h by
default: they are posted to Slack); `homeowner artifacts link RUN_ID` signs a run's links again.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dagster import ConfigurableResource
from pydantic import Field

from homeowner_dagster import settings
from homeowner_dagster.addresses import SUPABASE_URL, service_address

SIGNED_URL_TTL_ENV = "HOMEOWNER_SIGNED_URL_TTL"
DEFAULT_SIGNED_URL_SECONDS = 24 * 3600
_DURATION = re.compile(r"\s*(\d+)\s*([smhd]?)\s*", re.IGNORECASE)
_SIGNED_PATH = re.compile(r"/object/sign/([^/]+)/(.+)$")


def signed_url_ttl(value: str | None = None) -> int:
    """Seconds a signed link lives: HOMEOWNER_SIGNED_URL_TTL (`86400`, `24h`, `90m`, `2d`)."""
    text = os.environ.get(SIGNED_URL_TTL_ENV, "") if value is None else value
    if not text.strip():
        return DEFAULT_SIGNED_URL_SECONDS
    match = _DURATION.fullmatch(text)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(
            f"{SIGNED_URL_TTL_ENV} must be a positive duration like 86400, 24h or 90m (got {text!r})"
        )
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2).lower()]
    return int(match.group(1)) * unit


def stored_key(link: str, bucket: str) -> str | None:
    """The object key a signed link of `bucket` points at (None for other links)."""
    match = _SIGNED_PATH.search(urlsplit(link).path)
    if not match or unquote(match.group(1)) != bucket:
        return None
    return unquote(match.group(2))


class ArtifactStoreResource(ConfigurableResource):
    """Keeps run artifacts; backend `local` (default) or `supabase`.

    Supabase's address (SUPABASE_URL, checked) and the links' lifetime (HOMEOWNER_SIGNED_URL_TTL)
    are the deployment's, never run config: the service key goes to no other host.
    """

    backend: str = Field(default="local", description="`local` or `supabase`")
    local_dir: str | None = Field(default=None, description="default: .homeowner/artifacts")
    supabase_key: str | None = Field(default=None, description="service role key, from EnvVar")
    bucket: str = "homeowner-artifacts"

    def link_seconds(self) -> int:
        return signed_url_ttl()

    def _local_root(self) -> Path:
        root = Path(self.local_dir) if self.local_dir else settings.home_dir() / "artifacts"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _supabase_bucket(self):  # noqa: ANN202 - storage3's bucket proxy
        import httpx
        from supabase import create_client
        from supabase.lib.client_options import SyncClientOptions

        url = service_address(SUPABASE_URL)  # refused before the key is sent anywhere
        if not self.supabase_key:
            raise ValueError("artifact store `supabase` needs SUPABASE_SERVICE_ROLE_KEY")
        # storage3's own client follows redirects, sending the service key along: not this one.
        session = httpx.Client(timeout=60, follow_redirects=False)
        client = create_client(
            url, self.supabase_key, options=SyncClientOptions(httpx_client=session)
        )
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
            return self._sign(bucket, key)
        raise ValueError(f"unknown artifact backend {self.backend!r}")

    def _sign(self, bucket, key: str) -> str:  # noqa: ANN001 - storage3's bucket proxy
        signed = bucket.create_signed_url(key, self.link_seconds())
        return signed.get("signedURL") or signed.get("signedUrl") or ""

    def relink(self, link: str) -> str:
        """A fresh link to the object an older (maybe expired) link named.

        Local `file://` links do not expire and come back as they are, if the file is there.
        """
        if link.startswith("file://"):
            if not Path(unquote(urlsplit(link).path)).is_file():
                raise FileNotFoundError(f"{link} no longer exists")
            return link
        if self.backend != "supabase":
            raise ValueError(
                "this link is a Supabase Storage link: set HOMEOWNER_ARTIFACTS_BACKEND=supabase"
            )
        key = stored_key(link, self.bucket)
        if key is None:
            raise ValueError(f"not a signed link of bucket {self.bucket!r}")
        _, bucket = self._supabase_bucket()
        return self._sign(bucket, key)

    def delete(self, key: str) -> None:
        """Remove a stored object (the address list handed to DeBounce, once it is done)."""
        key = key.lstrip("/")
        if self.backend == "local":
            (self._local_root() / key).unlink(missing_ok=True)
            return
        if self.backend == "supabase":
            _, bucket = self._supabase_bucket()
            bucket.remove([key])
            return
        raise ValueError(f"unknown artifact backend {self.backend!r}")

    def put(self, path: Path, key: str, content_type: str = "application/octet-stream") -> str:
        """Store the file at `path` under `key` and return a link to it."""
        if self.backend == "local":
            target = self._local_root() / key.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            return target.resolve().as_uri()
        return self.put_bytes(Path(path).read_bytes(), key, content_type)
