"""The S3 storage backend: any S3-compatible object store (AWS S3, MinIO, SeaweedFS, Ceph RGW, …).

A PUT that returned 200 is durable (the store's own guarantee), so ``write_batch`` returns only
after every object of the batch was acknowledged; the uploads of one batch run in parallel.
A connection error or a 5xx answer is :class:`StorageUnavailableError` (the collector keeps the
batch and retries); a refusal (credentials, permissions) is a :class:`StorageError`.

At start a HEAD on the bucket turns a missing bucket, refused credentials or an unreachable
endpoint into one clear line, instead of a failure on the first sample.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agent.collector.s3_sign import Credentials, Signer, quote_key
from agent.collector.storage import StorageError, StorageUnavailableError
from agent.config.secret import Secret

if TYPE_CHECKING:
    from agent.collector.config import S3Config

_THREADS = 16
_REFUSED = {"403", "401", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}
_MISSING_BUCKET = {"404", "NoSuchBucket", "NotFound"}


class S3Storage:
    """Keys are the same relative paths as the local backend's, under ``prefix`` in ``bucket``."""

    kind = "s3"

    def __init__(self, cfg: S3Config, secret_key: Secret | None) -> None:
        try:
            import boto3
            import urllib3
            from botocore.config import Config
        except ImportError as exc:
            raise StorageError("storage.backend s3 needs the collector extra (boto3)") from exc
        self.cfg = cfg
        self.bucket = cfg.bucket
        self.prefix = cfg.prefix.strip("/") + "/" if cfg.prefix.strip("/") else ""
        self.where = f"s3 bucket {cfg.bucket} at {cfg.endpoint or 'AWS'}"
        session = boto3.session.Session(
            aws_access_key_id=cfg.access_key,
            aws_secret_access_key=secret_key.reveal() if secret_key else None,
            region_name=cfg.region,
        )
        self._client = session.client(
            "s3",
            endpoint_url=cfg.endpoint,
            config=Config(
                # Presigned URLs (the devices' uploads) default to Signature Version 2 in botocore
                # when an endpoint is given; AWS S3 refuses SigV2 for buckets made since 2020 and in
                # every region opened since 2014. Requests are SigV4 either way.
                signature_version="s3v4",
                s3={"addressing_style": cfg.addressing_style},
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=cfg.connect_timeout_s,
                read_timeout=cfg.read_timeout_s,
                max_pool_connections=_THREADS * 2,
            ),
        )
        self._pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="s3-put")
        self._http = urllib3.PoolManager(
            maxsize=_THREADS, timeout=urllib3.Timeout(connect=cfg.connect_timeout_s, read=cfg.read_timeout_s)
        )
        self._check_bucket()
        self._credentials = session.get_credentials()
        self._signer = Signer(cfg.region, self._frozen_credentials)
        # Every object's URL is this one's with another key: botocore resolves the endpoint
        # (addressing style, region) once; the PUTs are then signed by the cheaper Signer.
        probe = urlsplit(
            self._client.generate_presigned_url("put_object", {"Bucket": self.bucket, "Key": "k"})
        )
        self._origin, self._host = f"{probe.scheme}://{probe.netloc}", probe.netloc
        self._base_path = probe.path[: -len("k")]

    def _frozen_credentials(self) -> Credentials:
        if self._credentials is None:
            raise StorageError(f"{self.where}: no credentials (set access_key and secret_key)")
        frozen = self._credentials.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    def _check_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            code = _code(exc)
            if code in _MISSING_BUCKET:
                raise StorageError(f"{self.where}: the bucket does not exist (create it first)") from exc
            if code in _REFUSED:
                raise StorageError(
                    f"{self.where}: credentials refused ({code}); check access_key/secret_key"
                ) from exc
            raise self._translate(exc, "cannot reach") from exc

    def key(self, key: str) -> str:
        return self.prefix + key

    def write_batch(self, items: Sequence[tuple[str, bytes]]) -> None:
        if items:
            list(self._pool.map(lambda item: self._put(*item), items))

    def create_batch(self, items: Sequence[tuple[str, bytes]]) -> set[str]:
        """Store each object only where its key is free (``If-None-Match: *``, an atomic test in the
        store): the keys already taken come back, untouched. Two collectors racing on one sample id
        therefore cannot overwrite each other's image; the caller compares and quarantines."""
        if not items:
            return set()
        created = list(self._pool.map(lambda item: self._put(item[0], item[1], only_new=True), items))
        return {key for (key, _), new in zip(items, created, strict=True) if not new}

    def _put(self, key: str, data: bytes, only_new: bool = False) -> bool:
        """A PUT signed in its headers (:mod:`s3_sign`) on a plain keep-alive HTTP pool: the same
        SigV4 authentication as ``put_object`` at a fraction of its CPU, which matters when the
        collector shares its cores with the store. ``Content-MD5`` makes the store refuse an
        object that arrived damaged."""
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        path = self._base_path + quote_key(self.key(key))
        headers = {"Content-Type": _type(key), "Content-MD5": md5}
        if only_new:
            headers["If-None-Match"] = "*"
        headers = self._signer.headers("PUT", self._host, path, headers)
        try:
            response = self._http.request(
                "PUT", self._origin + path, body=data, headers=headers, retries=False
            )
        except Exception as exc:  # connection refused, reset, timeout
            raise StorageUnavailableError(f"cannot store {key} in {self.where}: {exc}") from exc
        if response.status // 100 == 2:
            return True
        if only_new and response.status == 412:  # PreconditionFailed: the key is taken
            return False
        code = _xml_code(response.data) or str(response.status)
        text = f"cannot store {key} in {self.where}: HTTP {response.status} {code}"
        raise (StorageUnavailableError if response.status >= 500 else StorageError)(text)

    def move(self, src: str, dst: str) -> None:
        """Copy then delete (S3 has no rename): a crash between leaves both, never neither."""
        try:
            self._client.copy_object(
                Bucket=self.bucket,
                Key=self.key(dst),
                CopySource={"Bucket": self.bucket, "Key": self.key(src)},
            )
            self._client.delete_object(Bucket=self.bucket, Key=self.key(src))
        except Exception as exc:
            raise self._translate(exc, f"cannot move {src} to {dst} in") from exc

    def read(self, key: str) -> bytes:
        try:
            body: bytes = self._client.get_object(Bucket=self.bucket, Key=self.key(key))["Body"].read()
        except Exception as exc:
            raise self._translate(exc, f"cannot read {key} from") from exc
        return body

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self.key(key))
        except Exception as exc:
            if _code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise self._translate(exc, f"cannot look up {key} in") from exc
        return True

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self.key(key))
        except Exception as exc:
            raise self._translate(exc, f"cannot delete {key} from") from exc

    def entries(self) -> Iterator[tuple[str, int, float]]:
        """(key, size, modification time) of every object under the prefix (for fsck and migrate)."""
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix) :]
                    yield key, int(obj["Size"]), obj["LastModified"].timestamp()
        except Exception as exc:
            raise self._translate(exc, "cannot list") from exc

    def presign_put(self, key: str, expiry_s: int) -> str:
        """A URL that lets its holder PUT exactly this key (a JPEG), for ``expiry_s`` seconds."""
        url: str = self._client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self.key(key), "ContentType": "image/jpeg"},
            ExpiresIn=expiry_s,
        )
        return url

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.clear()
        self._client.close()

    def _translate(self, exc: Exception, what: str) -> StorageError:
        code = _code(exc)
        text = f"{what} {self.where}: {code or type(exc).__name__}: {str(exc).strip()[:200]}"
        if code in _REFUSED or code in _MISSING_BUCKET or code in {"NoSuchKey"}:
            return StorageError(text)
        return StorageUnavailableError(text)  # connection errors, timeouts, 5xx: try again later


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error: dict[str, Any] = response.get("Error", {})
        return str(error.get("Code", ""))
    return ""


def _xml_code(body: bytes) -> str:
    """The ``<Code>`` of an S3 error document ("" when there is none)."""
    start, end = body.find(b"<Code>"), body.find(b"</Code>")
    return body[start + 6 : end].decode(errors="replace") if 0 <= start < end else ""


def _type(key: str) -> str:
    return "image/jpeg" if key.endswith(".jpg") else "application/octet-stream"
