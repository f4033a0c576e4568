"""TLS: the PyPI sip2 client logs in and lends over TLS; plain TCP off loopback is refused at start."""
import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.sip2.conftest import kiosk_node_config, start_kiosk_node
from tests.sip2.kiosk import Kiosk, Raw, field


def self_signed(folder):
    """A certificate for 127.0.0.1 (as CN and IP SAN) and its key, written as PEM into FOLDER."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sip2.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "sip2.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return folder / "sip2.crt", folder / "sip2.key"


@pytest.fixture
def tls_node(tmp_path, south_key):
    from node.store.db import database
    cert, key = self_signed(tmp_path / "tls")
    path = kiosk_node_config(str(tmp_path / "north"), south_key[1],
                             f"tls_certificate = {cert}\ntls_key = {key}\n")
    cfg, server = start_kiosk_node(path)
    yield cfg, server, cert
    server.shutdown()
    server.server_close()
    database.close()


def test_the_pypi_client_lends_over_tls(tls_node):
    cfg, server, _ = tls_node
    assert server.address.startswith("tls://")
    kiosk = Kiosk(server.server_address[1], tls=True)
    kiosk.connect()  # the client first fails to verify, fetches the self-signed certificate, trusts it, connects
    assert kiosk._socket.version().startswith("TLSv1.")
    assert kiosk.login()["fixed"]["Ok"] == "1"
    kiosk.patron = "n-100"
    out = kiosk.ask(kiosk.sip_checkout_request("N0001"), kiosk.sip_checkout_response)
    assert out["fixed"]["Ok"] == "1", field(out, "AF")
    assert field(out, "AJ") == "Book 1"
    kiosk.disconnect()


def test_plain_bytes_at_the_tls_port_end_only_that_connection(tls_node):
    cfg, server, cert = tls_node
    plain = Raw(server.server_address[1])
    assert plain.ask(b"9300CNkiosk1|COx|\r") == b""  # not a TLS handshake: closed
    plain.close()
    context = ssl.create_default_context(cafile=str(cert))
    kiosk = Raw(server.server_address[1], wrap=lambda sock: context.wrap_socket(sock, server_hostname="127.0.0.1"))
    assert kiosk.ask(b"9300CNkiosk1|COkiosk-secret-2026|\r") == b"941"
    kiosk.close()
