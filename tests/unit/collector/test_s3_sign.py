"""The collector's SigV4 header signature is botocore's, byte for byte (botocore is the oracle)."""

from __future__ import annotations

import calendar
import datetime as dt

import pytest
from botocore import auth as boto_auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials

from agent.collector.s3_sign import Credentials, Signer, quote_key

ORIGIN_HOST = "127.0.0.1:8333"


def botocore_headers(
    monkeypatch: pytest.MonkeyPatch, when: dt.datetime, path: str, headers: dict[str, str], token: str | None
) -> dict[str, str]:
    monkeypatch.setattr(boto_auth, "get_current_datetime", lambda: when)
    request = AWSRequest("PUT", f"http://{ORIGIN_HOST}{path}", headers=dict(headers), data=b"jpeg")
    request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    boto_auth.S3SigV4Auth(BotoCredentials("AKID", "secret/key+1", token), "s3", "eu-west-1").add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("token", [None, "session-token"])
@pytest.mark.parametrize(
    "key", ["m/1.0/unlabeled/ok/01J.jpg", "m/1 0/unlabeled/a+b~c/é%.jpg", "quarantine/20261201/x.bin"]
)
def test_signature_matches_botocore(monkeypatch: pytest.MonkeyPatch, key: str, token: str | None) -> None:
    when = dt.datetime(2026, 12, 1, 6, 59, 59)
    path = "/samples/" + quote_key(key)
    headers = {"Content-Type": "image/jpeg", "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg==", "If-None-Match": "*"}
    expected = botocore_headers(monkeypatch, when, path, headers, token)
    signer = Signer("eu-west-1", lambda: Credentials("AKID", "secret/key+1", token))
    ours = signer.headers("PUT", ORIGIN_HOST, path, headers, now=calendar.timegm(when.timetuple()))
    assert ours["Authorization"] == expected["Authorization"]
    assert ours["X-Amz-Date"] == expected["X-Amz-Date"]
    assert ours.get("X-Amz-Security-Token") == expected.get("X-Amz-Security-Token")


def test_the_cached_signing_key_follows_the_day_and_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = ["secret/key+1"]
    signer = Signer("eu-west-1", lambda: Credentials("AKID", secret[0]))
    headers = {"Content-Type": "image/jpeg"}
    for when, new_secret in (
        (dt.datetime(2026, 12, 1, 23, 59, 59), "secret/key+1"),
        (dt.datetime(2026, 12, 2, 0, 0, 1), "secret/key+1"),  # the next day: a new derived key
        (dt.datetime(2026, 12, 2, 0, 0, 2), "rotated"),  # refreshed credentials: a new derived key
    ):
        secret[0] = new_secret
        monkeypatch.setattr(boto_auth, "get_current_datetime", lambda when=when: when)
        request = AWSRequest("PUT", f"http://{ORIGIN_HOST}/b/k", headers=dict(headers), data=b"x")
        request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
        boto_auth.S3SigV4Auth(BotoCredentials("AKID", new_secret), "s3", "eu-west-1").add_auth(request)
        ours = signer.headers("PUT", ORIGIN_HOST, "/b/k", headers, now=calendar.timegm(when.timetuple()))
        assert ours["Authorization"] == request.headers["Authorization"]


def test_keys_are_encoded_as_s3_expects() -> None:
    assert quote_key("a b/c+d~e/é.jpg") == "a%20b/c%2Bd~e/%C3%A9.jpg"
