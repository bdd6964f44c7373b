"""TLS for a broker connection, built once from a ``tls`` config section (the agent's or the collector's)."""

from __future__ import annotations

import ssl

import structlog

from agent.config.schema import TlsConfig
from agent.errors import ConfigError

log = structlog.get_logger(__name__)


def tls_context(tls: TlsConfig, section: str = "mqtt") -> ssl.SSLContext:
    """A client context: verify the broker against ``ca_file`` (or the system CAs) and its hostname.

    ``section`` is the config section that holds ``tls`` (``mqtt`` on a device, ``broker`` in the
    collector), so a refused file is reported under the key the operator actually wrote.
    ``insecure_skip_verify`` turns off the hostname check only (the chain is still verified
    against the CA), for brokers reached by an address their certificate does not name.
    """
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{section}.tls.ca_file: cannot load {tls.ca_file}: {_why(exc)}") from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.sslsocket_class = _ClosingSSLSocket
    if tls.cert_file is not None and tls.key_file is not None:
        try:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{section}.tls.cert_file: cannot load {tls.cert_file} / {tls.key_file}: {_why(exc)}"
            ) from exc
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        log.warning(
            "mqtt_tls_hostname_check_off", key=f"{section}.tls.insecure_skip_verify", use="testing only"
        )
    return ctx


class _ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when the handshake fails: paho drops the socket without closing it."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
