"""The devices' presigned upload URLs: Signature Version 4, for this key, this content type only.

Against a SeaweedFS that checks signatures (its identities file holds the collector's key).
AWS S3 refuses Signature Version 2 for buckets made since 2020, which is what botocore presigns
with by default when an endpoint is configured.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from agent.collector.config import S3Config
from agent.collector.s3 import S3Storage
from agent.config.secret import Secret
from tests.support.s3 import SeaweedS3

pytestmark = pytest.mark.integration
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


def _put(url: str, body: bytes = JPEG, content_type: str = "image/jpeg") -> int:
    request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def storage(seaweed: SeaweedS3) -> S3Storage:
    cfg = S3Config(bucket=seaweed.bucket, endpoint=seaweed.endpoint, region=seaweed.region,
                   access_key=seaweed.access_key, prefix="site-a")  # fmt: skip
    return S3Storage(cfg, Secret(seaweed.secret_key))


def test_a_presigned_url_is_sigv4_and_lets_its_holder_put_that_key(
    storage: S3Storage, seaweed: SeaweedS3
) -> None:
    url = storage.presign_put("m/1.0.0/unlabeled/defect/abc.jpg", 60)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["60"]
    assert "Signature" not in query  # no Signature Version 2 parameters
    assert _put(url) == 200
    assert "site-a/m/1.0.0/unlabeled/defect/abc.jpg" in seaweed.keys("site-a/")
    storage.close()


def test_a_presigned_url_does_not_open_other_keys_or_content_types(storage: S3Storage) -> None:
    url = storage.presign_put("m/1.0.0/unlabeled/defect/abc.jpg", 60)
    assert _put(url.replace("abc.jpg", "other.jpg")) == 403
    assert _put(url, content_type="text/html") == 403
    storage.close()
