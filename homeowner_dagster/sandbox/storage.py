"""Supabase Storage stand-in: the calls the `supabase` client (storage3) makes.

Paths, bodies and error shapes follow storage3 2.x and the Storage API: buckets under
`/storage/v1/bucket`, objects under `/storage/v1/object/{bucket}/{path}` (multipart field `file`,
`x-upsert` header), signed URLs from `POST /storage/v1/object/sign/{bucket}/{path}` answered as
`{"signedURL": "/object/sign/...?token=..."}` and downloaded with `GET` on that path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from homeowner_dagster.sandbox.faults import Faults, service_fault


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    created_at: float


@dataclass
class StorageState:
    service_key: str
    buckets: dict[str, dict] = field(default_factory=dict)
    objects: dict[tuple[str, str], StoredObject] = field(default_factory=dict)
    downloads: int = 0
    uploads: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create_bucket(self, bucket_id: str, public: bool = False) -> None:
        self.buckets[bucket_id] = {
            "id": bucket_id,
            "name": bucket_id,
            "owner": "",
            "public": public,
            "file_size_limit": None,
            "allowed_mime_types": None,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def keys(self, bucket: str) -> list[str]:
        return sorted(path for (b, path) in self.objects if b == bucket)

    def read(self, bucket: str, path: str) -> bytes:
        return self.objects[(bucket, path)].data

    def sign(self, bucket: str, path: str, expires_at: int) -> str:
        """A JWT-shaped token (HS256 over the service key) naming the object and its expiry."""
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps({"url": f"{bucket}/{path}", "exp": expires_at}).encode())
        signature = hmac.new(
            self.service_key.encode(), f"{header}.{payload}".encode(), hashlib.sha256
        )
        return f"{header}.{payload}.{_b64(signature.digest())}"

    def verify(self, token: str) -> tuple[str, int] | None:
        try:
            header, payload, signature = token.split(".")
        except ValueError:
            return None
        expected = hmac.new(
            self.service_key.encode(), f"{header}.{payload}".encode(), hashlib.sha256
        )
        if not hmac.compare_digest(_b64(expected.digest()), signature):
            return None
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims["url"], int(claims["exp"])


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _error(status: int, message: str, error: str | None = None) -> Response:
    # The Storage API answers errors with the status code as a string inside the body.
    return JSONResponse(
        {"statusCode": str(status), "error": error or message, "message": message}, status
    )


def build_storage_app(state: StorageState, faults: Faults) -> Starlette:
    def authorised(request: Request) -> bool:
        bearer = request.headers.get("authorization", "")
        return (
            bearer == f"Bearer {state.service_key}"
            or request.headers.get("apikey") == state.service_key
        )

    async def guard(request: Request, needs_key: bool = True) -> Response | None:
        fault = await service_fault(faults, "storage", _error)
        if fault is not None:
            return fault
        if needs_key and not authorised(request):
            return _error(400, "Invalid Compact JWS", "Unauthorized")
        return None

    async def create_bucket(request: Request) -> Response:
        if (stop := await guard(request)) is not None:
            return stop
        body = await request.json()
        bucket_id = body.get("id") or body.get("name")
        if bucket_id in state.buckets:
            return _error(400, "The resource already exists", "Duplicate")
        state.create_bucket(bucket_id, bool(body.get("public", False)))
        return JSONResponse({"name": bucket_id})

    async def get_bucket(request: Request) -> Response:
        if (stop := await guard(request)) is not None:
            return stop
        bucket = state.buckets.get(request.path_params["bucket"])
        if bucket is None:
            return _error(404, "Bucket not found", "Bucket not found")
        return JSONResponse(bucket)

    async def upload(request: Request) -> Response:
        if (stop := await guard(request)) is not None:
            return stop
        bucket, path = request.path_params["bucket"], request.path_params["path"]
        if bucket not in state.buckets:
            return _error(404, "Bucket not found", "Bucket not found")
        form = await request.form()
        upload_file = form.get("file")
        if upload_file is None or isinstance(upload_file, str):
            return _error(400, "No file was sent", "InvalidRequest")
        data = await upload_file.read()
        upsert = request.headers.get("x-upsert", "false").lower() == "true"
        with state._lock:
            exists = (bucket, path) in state.objects
            if request.method == "POST" and exists and not upsert:
                return _error(400, "The resource already exists", "Duplicate")
            if request.method == "PUT" and not exists:
                return _error(404, "Object not found", "not_found")
            state.uploads += 1
            state.objects[(bucket, path)] = StoredObject(
                data, upload_file.content_type or "application/octet-stream", time.time()
            )
        return JSONResponse({"Id": str(uuid.uuid4()), "Key": f"{bucket}/{path}"})

    async def remove(request: Request) -> Response:
        """`DELETE /object/{bucket}` with `{"prefixes": [paths]}`: the objects removed (storage3)."""
        if (stop := await guard(request)) is not None:
            return stop
        bucket = request.path_params["bucket"]
        body = await request.json()
        removed = []
        with state._lock:
            for path in body.get("prefixes") or []:
                if state.objects.pop((bucket, path), None) is not None:
                    removed.append({"name": path, "bucket_id": bucket})
        return JSONResponse(removed)

    async def authenticated_download(request: Request) -> Response:
        if (stop := await guard(request)) is not None:
            return stop
        stored = state.objects.get((request.path_params["bucket"], request.path_params["path"]))
        if stored is None:
            return _error(404, "Object not found", "not_found")
        state.downloads += 1
        return Response(stored.data, media_type=stored.content_type)

    async def sign(request: Request) -> Response:
        if (stop := await guard(request)) is not None:
            return stop
        bucket, path = request.path_params["bucket"], request.path_params["path"]
        if (bucket, path) not in state.objects:
            return _error(404, "Object not found", "not_found")
        body = await request.json()
        expires_at = int(time.time()) + int(body.get("expiresIn", 60))
        token = state.sign(bucket, path, expires_at)
        return JSONResponse(
            {"signedURL": f"/object/sign/{quote(bucket)}/{quote(path)}?token={token}"}
        )

    async def signed_download(request: Request) -> Response:
        if (stop := await guard(request, needs_key=False)) is not None:
            return stop
        bucket, path = request.path_params["bucket"], request.path_params["path"]
        claims = state.verify(request.query_params.get("token", ""))
        if claims is None or claims[0] != f"{bucket}/{path}":
            return _error(400, "invalid signature", "InvalidJWT")
        if claims[1] < time.time():
            return _error(400, '"exp" claim timestamp check failed', "InvalidJWT")
        stored = state.objects.get((bucket, path))
        if stored is None:
            return _error(404, "Object not found", "not_found")
        state.downloads += 1
        return Response(stored.data, media_type=stored.content_type)

    prefix = "/storage/v1"
    return Starlette(
        routes=[
            Route(f"{prefix}/bucket", create_bucket, methods=["POST"]),
            Route(f"{prefix}/bucket/{{bucket}}", get_bucket, methods=["GET"]),
            Route(f"{prefix}/object/{{bucket}}", remove, methods=["DELETE"]),
            Route(f"{prefix}/object/sign/{{bucket}}/{{path:path}}", sign, methods=["POST"]),
            Route(
                f"{prefix}/object/sign/{{bucket}}/{{path:path}}", signed_download, methods=["GET"]
            ),
            Route(f"{prefix}/object/{{bucket}}/{{path:path}}", upload, methods=["POST", "PUT"]),
            Route(
                f"{prefix}/object/{{bucket}}/{{path:path}}", authenticated_download, methods=["GET"]
            ),
        ]
    )
