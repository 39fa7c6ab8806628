"""amqps:// on a real broker: CA files, host name checks and client certificates.

Each broker here has a TLS listener on 127.0.0.1 beside its plain one. Its
certificates come from a throwaway CA that the module makes with the openssl
command line tool, valid for one day.
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from broker_api import WAIT_SECONDS, new_topic, rabbitmqctl, wait_until

import leveret

# Seconds that Transport.connect may take in the tests that expect it to fail.
# A TLS failure happens on the first attempt, within milliseconds.
CONNECT_TIMEOUT = 2.0
# Seconds past CONNECT_TIMEOUT by which connect must have raised.
CONNECT_MARGIN = 2.0

# A host name in the reserved .invalid domain, for a certificate of another host.
OTHER_HOST = "broker.invalid"

# openssl x509v3 extensions for each kind of certificate. OpenSSL (under
# Python's ssl module) and Erlang's ssl check the CA flag and key usages.
CA_EXTENSIONS = """
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""
LEAF_EXTENSIONS = """
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


@dataclasses.dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its unencrypted PEM private key."""

    cert: pathlib.Path
    key: pathlib.Path


@dataclasses.dataclass(frozen=True)
class Pki:
    """Certificates for the tests, all in one folder."""

    ca: KeyPair
    other_ca: KeyPair  # a CA that signed nothing the brokers trust
    localhost: KeyPair  # server: localhost and 127.0.0.1
    other_host: KeyPair  # server: OTHER_HOST only
    client: KeyPair  # signed by ca
    untrusted_client: KeyPair  # signed by other_ca


def _openssl(*arguments: str | pathlib.Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl is not None, (
        "the openssl command is missing: apt-get install openssl"
    )
    result = subprocess.run(
        [openssl, *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, f"openssl {arguments} failed: {result.stderr}"


def _issue(
    folder: pathlib.Path,
    name: str,
    common_name: str,
    extensions: str,
    issuer: KeyPair | None,
) -> KeyPair:
    """Make a P-256 key and a certificate for it, signed by *issuer* or itself."""
    pair = KeyPair(folder / f"{name}.pem", folder / f"{name}.key")
    config = folder / f"{name}.cnf"
    config.write_text(
        f"[req]\ndistinguished_name = subject\n[subject]\n[extensions]\n{extensions}"
    )
    _openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        pair.key,
    )
    signing = [] if issuer is None else ["-CA", issuer.cert, "-CAkey", issuer.key]
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        pair.key,
        "-subj",
        f"/CN={common_name}",
        "-days",
        "1",
        "-config",
        config,
        "-extensions",
        "extensions",
        *signing,
        "-out",
        pair.cert,
    )
    return pair


def _server_extensions(*names: str) -> str:
    return (
        f"{LEAF_EXTENSIONS}extendedKeyUsage = serverAuth\n"
        f"subjectAltName = {', '.join(names)}\n"
    )


CLIENT_EXTENSIONS = f"{LEAF_EXTENSIONS}extendedKeyUsage = clientAuth\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = _issue(folder, "ca", "leveret test CA", CA_EXTENSIONS, None)
    other_ca = _issue(folder, "other-ca", "leveret other CA", CA_EXTENSIONS, None)
    return Pki(
        ca=ca,
        other_ca=other_ca,
        localhost=_issue(
            folder,
            "localhost",
            "localhost",
            _server_extensions("DNS:localhost", "IP:127.0.0.1"),
            ca,
        ),
        other_host=_issue(
            folder,
            "other-host",
            OTHER_HOST,
            _server_extensions(f"DNS:{OTHER_HOST}"),
            ca,
        ),
        client=_issue(folder, "client", "leveret-client", CLIENT_EXTENSIONS, ca),
        untrusted_client=_issue(
            folder, "untrusted-client", "leveret-stranger", CLIENT_EXTENSIONS, other_ca
        ),
    )


# Brokers.


@dataclasses.dataclass(frozen=True)
class TlsBroker:
    state_dir: pathlib.Path
    tls_port: int


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_tls_broker(
    make_broker: Callable[[], Any],
    ca: pathlib.Path,
    server: KeyPair,
    require_client_cert: bool,
) -> TlsBroker:
    """Start a broker whose TLS listener presents *server* and trusts *ca*."""
    broker = make_broker()
    # The broker runs as the rabbitmq user, which cannot enter pytest's 0700
    # tmp_path, so its files go into the broker's own state folder.
    folder = broker.state_dir / "tls"
    folder.mkdir()
    files: dict[str, pathlib.Path] = {}
    for role, source in (("ca", ca), ("cert", server.cert), ("key", server.key)):
        files[role] = folder / source.name
        shutil.copyfile(source, files[role])
        shutil.chown(files[role], "rabbitmq", "rabbitmq")
    files["key"].chmod(0o600)
    port = _free_port()
    # ssl_options.verify = verify_peer checks a client certificate when the
    # client sends one; fail_if_no_peer_cert makes one mandatory.
    config = folder / "tls.conf"
    config.write_text(
        f"listeners.ssl.default = 127.0.0.1:{port}\n"
        f"ssl_options.cacertfile = {files['ca']}\n"
        f"ssl_options.certfile = {files['cert']}\n"
        f"ssl_options.keyfile = {files['key']}\n"
        "ssl_options.verify = verify_peer\n"
        f"ssl_options.fail_if_no_peer_cert = {str(require_client_cert).lower()}\n"
    )
    broker.start(config=config)
    return TlsBroker(broker.state_dir, port)


@pytest.fixture(scope="module")
def tls_broker(make_broker: Callable[[], Any], pki: Pki) -> TlsBroker:
    """A broker with a certificate for localhost and 127.0.0.1.

    Client certificates are optional.
    """
    return _start_tls_broker(make_broker, pki.ca.cert, pki.localhost, False)


@pytest.fixture(scope="module")
def mutual_tls_broker(make_broker: Callable[[], Any], pki: Pki) -> TlsBroker:
    """A broker with a certificate for OTHER_HOST only.

    Every client must present a certificate signed by the test CA.
    """
    return _start_tls_broker(make_broker, pki.ca.cert, pki.other_host, True)


# Helpers.


class Service:
    def __init__(self) -> None:
        self.received: list[Any] = []

    def ping(self) -> str:
        return "pong"

    def record(self, value: Any) -> None:
        self.received.append(value)


def _url(host: str, port: int, **options: str | pathlib.Path) -> str:
    query = "&".join(f"{name}={value}" for name, value in options.items())
    return f"amqps://guest:guest@{host}:{port}/?{query}"


def _supervisor(transport: leveret.Transport):  # type: ignore[no-untyped-def]
    return transport._supervisor  # type: ignore[attr-defined]


def _broker_row(state_dir: pathlib.Path, transport: leveret.Transport) -> Any:
    """Return the broker's list_connections row for the transport's connection."""
    connection = _supervisor(transport).connection
    assert connection is not None, "the transport is not connected"
    port = connection._transport.get_extra_info("sockname")[1]
    rows = rabbitmqctl(
        state_dir,
        "list_connections",
        "peer_port",
        "peer_host",
        "ssl",
        "ssl_protocol",
        "peer_cert_subject",
    )
    matching = [row for row in rows if row["peer_port"] == port]
    assert len(matching) == 1, f"no single connection from port {port}: {rows}"
    return matching[0]


def _connect_error(transport: leveret.Transport) -> str:
    """Return the message of the ConnectionLost that connect raises in time."""
    started = time.monotonic()
    with pytest.raises(leveret.ConnectionLost) as caught:
        transport.connect(timeout=CONNECT_TIMEOUT)
    elapsed = time.monotonic() - started
    limit = CONNECT_TIMEOUT + CONNECT_MARGIN
    assert elapsed < limit, f"connect raised after {elapsed:.2f} s, past {limit} s"
    return str(caught.value)


# Server certificate checks.


def test_call_and_cast_over_amqps(
    tls_broker: TlsBroker,
    pki: Pki,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    url = _url("localhost", tls_broker.tls_port, ssl_ca_file=pki.ca.cert)
    transport = make_transport(url)
    topic = new_topic("tls")
    service = Service()

    with leveret.RPCServer(transport, leveret.Target(topic, server="s1"), [service]):
        client = leveret.RPCClient(
            transport, leveret.Target(topic), timeout=WAIT_SECONDS
        )
        assert client.call("ping") == "pong"
        client.cast("record", value="over tls")
        assert wait_until(lambda: service.received == ["over tls"])

    # "localhost" reached the broker from 127.0.0.1, the only address that
    # RabbitMQ lets the guest user log in from.
    row = _broker_row(tls_broker.state_dir, transport)
    assert row["ssl"] is True
    assert row["ssl_protocol"] in ("tlsv1.2", "tlsv1.3")
    assert row["peer_host"] == [127, 0, 0, 1]  # an Erlang IP address tuple


def test_hostname_checked_against_ip_address(
    tls_broker: TlsBroker,
    pki: Pki,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    transport = make_transport(
        _url("127.0.0.1", tls_broker.tls_port, ssl_ca_file=pki.ca.cert)
    )

    transport.connect(timeout=WAIT_SECONDS)

    assert not transport.closed


def test_close_closes_tls_socket(
    tls_broker: TlsBroker,
    pki: Pki,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    url = _url("localhost", tls_broker.tls_port, ssl_ca_file=pki.ca.cert)
    # A TLS socket closes after the broker replies to the client's close_notify.
    # When the transport's event loop stops first, the socket stays open until
    # the garbage collector finds it. That is a race, so try a few times.
    for attempt in range(5):
        transport = make_transport(url)
        transport.connect(timeout=WAIT_SECONDS)
        sock = _supervisor(transport).connection._transport.get_extra_info("socket")

        transport.close()

        assert sock.fileno() == -1, f"TLS socket open after close(), attempt {attempt}"


@pytest.mark.parametrize("trusted", ["other-ca", "system"])
def test_untrusted_server_certificate_fails_connect(
    tls_broker: TlsBroker,
    pki: Pki,
    make_transport: Callable[[str], leveret.Transport],
    trusted: str,
) -> None:
    options = {"ssl_ca_file": pki.other_ca.cert} if trusted == "other-ca" else {}
    transport = make_transport(_url("localhost", tls_broker.tls_port, **options))

    message = _connect_error(transport)

    # The broker sends its CA along with its certificate, so OpenSSL reports
    # an untrusted self-signed certificate in the chain.
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert "self-signed certificate in certificate chain" in message


def test_server_certificate_for_other_host_fails_connect(
    mutual_tls_broker: TlsBroker,
    pki: Pki,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    url = _url(
        "127.0.0.1",
        mutual_tls_broker.tls_port,
        ssl_ca_file=pki.ca.cert,
        ssl_cert_file=pki.client.cert,
        ssl_key_file=pki.client.key,
    )
    transport = make_transport(url)

    message = _connect_error(transport)

    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert "IP address mismatch" in message


# Client certificates, and ssl_verify_hostname=false.


def test_client_certificate_and_other_host_accepted(
    mutual_tls_broker: TlsBroker,
    pki: Pki,
    make_transport: Callable[[str], leveret.Transport],
) -> None:
    url = _url(
        "127.0.0.1",
        mutual_tls_broker.tls_port,
        ssl_ca_file=pki.ca.cert,
        ssl_cert_file=pki.client.cert,
        ssl_key_file=pki.client.key,
        ssl_verify_hostname="false",
    )
    transport = make_transport(url)
    topic = new_topic("mtls")

    with leveret.RPCServer(transport, leveret.Target(topic, server="s1"), [Service()]):
        client = leveret.RPCClient(
            transport, leveret.Target(topic), timeout=WAIT_SECONDS
        )
        assert client.call("ping") == "pong"

    row = _broker_row(mutual_tls_broker.state_dir, transport)
    assert row["ssl"] is True
    assert row["peer_cert_subject"] == "CN=leveret-client"


@pytest.mark.parametrize("client", ["none", "untrusted"])
def test_bad_client_certificate_rejected(
    mutual_tls_broker: TlsBroker,
    pki: Pki,
    make_transport: Callable[[str], leveret.Transport],
    client: str,
) -> None:
    options: dict[str, str | pathlib.Path] = {
        "ssl_ca_file": pki.ca.cert,
        "ssl_verify_hostname": "false",
    }
    if client == "untrusted":
        options["ssl_cert_file"] = pki.untrusted_client.cert
        options["ssl_key_file"] = pki.untrusted_client.key
    transport = make_transport(_url("127.0.0.1", mutual_tls_broker.tls_port, **options))

    message = _connect_error(transport)

    expected = "CERTIFICATE_REQUIRED" if client == "none" else "UNKNOWN_CA"
    assert expected in message
