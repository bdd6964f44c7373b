"""A real headless chromium driven by selenium, for tests of the web pages.

``browser()`` (the fixture) makes a new, isolated browser each call (its own profile, so its own
cookies: one per user); every browser it made is closed at teardown. Debian's ``chromium`` and
``chromium-driver`` are used (scripts/test.sh installs them); without them the test fails.
:func:`trust_key` makes the flag with which chromium accepts one server key, for pages served
over HTTPS with a test CA's certificate. :func:`wait` polls a condition on the page.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    "--window-size=1400,900",
)  # fmt: skip


def trust_key(cert_pem: Path) -> str:
    """``--ignore-certificate-errors-spki-list`` for exactly this certificate's public key: chromium
    then accepts that server (and no other) without a CA in a system trust store."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "--ignore-certificate-errors-spki-list=" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 20.0, poll: float = 0.02) -> Any:
    """``condition(driver)`` once it is truthy. An element that is gone, or was replaced by the next
    page while the condition read it (a submitted form's redirect landing between ``find_element``
    and ``.text``), counts as "not yet" rather than failing the test."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout, poll_frequency=poll, ignored_exceptions=ignored).until(condition)


def new_browser(profile: Path, extra: tuple[str, ...] = ()) -> object:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (*ARGS, *extra):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


@pytest.fixture
def browser() -> Iterator[Callable[..., object]]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("chromium and chromium-driver are not installed (scripts/test.sh installs them)")
    made: list[tuple[object, Path]] = []

    def make(*extra: str) -> object:
        """A new browser; ``extra``: more chromium flags (trusting a test CA's server key, say)."""
        profile = Path(tempfile.mkdtemp(prefix="chromium-"))
        made.append((new_browser(profile, extra), profile))
        return made[-1][0]

    yield make
    for driver, profile in made:
        driver.quit()  # type: ignore[attr-defined]
        shutil.rmtree(profile, ignore_errors=True)
