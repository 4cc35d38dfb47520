"""MQTT over TLS (server-verified and mutual) and with username/password, through oddwatch's
own clients (:mod:`oddwatch.connectors.mqtt`) against a real Mosquitto whose certificates the
test makes with ``openssl``."""

from __future__ import annotations

import contextlib
import getpass
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from oddwatch.connectors.mqtt import MqttError, MqttPublisher
from oddwatch.flowrunner import TopicCollector
from oddwatch.services import free_port
from oddwatch.settings import Settings

OPENSSL = shutil.which("openssl")
MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/bin")
PASSWD = shutil.which("mosquitto_passwd") or shutil.which("mosquitto_passwd", path="/usr/bin")

pytestmark = [pytest.mark.integration, pytest.mark.skipif(sys.platform != "linux", reason="Mosquitto on Linux")]


@dataclass
class SecureBroker:
    tls_port: int  # TLS, server certificate only
    mutual_port: int  # TLS, client certificate required
    auth_port: int  # plain, username/password required
    certs: Path


def _openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def _make_certs(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate it signed; and an
    unrelated CA nobody used."""
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
                 "-days", "2", "-subj", f"/CN=oddwatch {ca}", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=oddwatch-{name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited ({proc.returncode}): {log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"mosquitto: nothing listens on {port}: {log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    if not (OPENSSL and MOSQUITTO and PASSWD):
        pytest.skip("needs openssl, mosquitto and mosquitto_passwd: sudo apt-get install -y openssl mosquitto")
    d = tmp_path_factory.mktemp("mqtt-tls")
    _make_certs(d)
    passwd = d / "passwd"
    subprocess.run([PASSWD, "-c", "-b", str(passwd), "oddwatch", "s3cret pw"], check=True, capture_output=True)
    passwd.chmod(0o600)
    b = SecureBroker(free_port(), free_port(), free_port(), d)
    tls = f"cafile {d / 'ca.crt'}\ncertfile {d / 'server.crt'}\nkeyfile {d / 'server.key'}\n"
    conf = d / "mosquitto.conf"
    log = d / "mosquitto.log"
    conf.write_text(
        f"user {getpass.getuser()}\nper_listener_settings true\nlog_dest file {log}\n"
        f"listener {b.tls_port} 127.0.0.1\n{tls}allow_anonymous true\n"
        f"listener {b.mutual_port} 127.0.0.1\n{tls}require_certificate true\nallow_anonymous true\n"
        f"listener {b.auth_port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for port in (b.tls_port, b.mutual_port, b.auth_port):
            _wait_port(port, proc, log)
        yield b
    finally:
        proc.terminate()
        proc.wait(10)


def _settings(port: int, unique: str, **mqtt: str) -> Settings:
    s = Settings()
    s.mqtt.port = port
    s.mqtt.client_id = f"ow-sec-{unique}"
    s.mqtt.reconnect_min_s, s.mqtt.reconnect_max_s = 0.1, 1.0
    for key, value in mqtt.items():
        setattr(s.mqtt, key, value)
    return s


def _round_trip(settings: Settings, unique: str) -> None:
    """Subscribe with the flows' source and publish with the flows' publisher."""
    topic = f"sec/{unique}"
    with TopicCollector(settings, [topic]) as sub:
        pub = MqttPublisher(settings.mqtt, f"{settings.mqtt.client_id}-pub", connect_timeout_s=5)
        try:
            pub.publish(topic, b"21.5")
        finally:
            pub.close()
        assert sub.wait(lambda ms: [m.payload for m in ms] == [b"21.5"], 10)


def _refused(settings: Settings) -> str:
    with pytest.raises(MqttError) as err:
        MqttPublisher(settings.mqtt, f"{settings.mqtt.client_id}-pub", connect_timeout_s=3).close()
    return str(err.value)


def test_tls_with_the_server_verified(broker: SecureBroker, unique: str) -> None:
    _round_trip(_settings(broker.tls_port, unique, tls_ca=str(broker.certs / "ca.crt")), unique)


def test_tls_refuses_a_server_signed_by_another_ca(broker: SecureBroker, unique: str) -> None:
    message = _refused(_settings(broker.tls_port, unique, tls_ca=str(broker.certs / "other-ca.crt")))
    assert f"127.0.0.1:{broker.tls_port}" in message and "CERTIFICATE_VERIFY_FAILED" in message


def test_mutual_tls(broker: SecureBroker, unique: str) -> None:
    certs = broker.certs
    _round_trip(_settings(broker.mutual_port, unique, tls_ca=str(certs / "ca.crt"),
                          tls_cert=str(certs / "client.crt"), tls_key=str(certs / "client.key")), unique)


def test_mutual_tls_refuses_a_client_without_certificate(broker: SecureBroker, unique: str) -> None:
    message = _refused(_settings(broker.mutual_port, unique, tls_ca=str(broker.certs / "ca.crt")))
    assert f"127.0.0.1:{broker.mutual_port}" in message


def test_username_and_password(broker: SecureBroker, unique: str) -> None:
    _round_trip(_settings(broker.auth_port, unique, username="oddwatch", password="s3cret pw"), unique)
    assert "127.0.0.1" in _refused(_settings(broker.auth_port, unique, username="oddwatch", password="wrong"))
    assert "127.0.0.1" in _refused(_settings(broker.auth_port, unique))  # anonymous

