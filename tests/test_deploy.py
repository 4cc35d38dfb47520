"""Static checks of deploy/: compose, Dockerfile, systemd units, Grafana provisioning.

Docker, Grafana and systemd cannot run here, so these tests check what can be checked
without them: the files parse, names and paths agree with each other and with the code.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from oddwatch.cli import build_parser
from oddwatch.services import MQTT_AUTOSAVE_S, MQTT_MAX_INFLIGHT, MQTT_MAX_QUEUED, MQTT_MAX_QUEUED_BYTES
from oddwatch.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "oddwatch.yaml"
PROVIDER = DEPLOY / "grafana" / "provisioning" / "dashboards" / "oddwatch.yaml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
UNITS = {flow: DEPLOY / "systemd" / f"oddwatch-{flow}.service" for flow in ("sensors", "logs", "incidents")}
VAR = re.compile(r"\$\{(\w+)(:?-[^}]*)?\}")


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` interpolation."""
    return VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ":-")[2:], value)


# --- docker compose --------------------------------------------------------------------------


def test_compose_services() -> None:
    services = compose()["services"]
    assert set(services) == {"mosquitto", "influxdb", "grafana", "oddwatch-sensors", "oddwatch-logs", "oddwatch-incidents"}
    for name, svc in services.items():
        assert svc.get("image"), name
        assert svc.get("restart") == "unless-stopped", name
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"


def test_compose_variables_are_in_env_example() -> None:
    text = COMPOSE.read_text()
    example = env_example()
    required = {m.group(1) for m in VAR.finditer(text) if not m.group(2)}
    assert required <= set(example), f"missing in .env.example: {sorted(required - set(example))}"
    used = {m.group(1) for m in VAR.finditer(text)}
    assert set(example) <= used, f"unused in docker-compose.yml: {sorted(set(example) - used)}"


def test_compose_volumes_and_mounts() -> None:
    data = compose()
    declared = set(data["volumes"])
    used = set()
    for name, svc in data["services"].items():
        for mount in svc.get("volumes", []):
            source, target = mount.split(":")[:2]
            assert target.startswith("/"), (name, mount)
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: bind mount source {source} does not exist"
            else:
                used.add(source)
    assert used == declared, f"declared {sorted(declared)} but used {sorted(used)}"


def test_compose_host_ports_are_unique_and_local_by_default() -> None:
    ports = []
    for svc in compose()["services"].values():
        for spec in svc.get("ports", []):
            host = interpolate(spec, {})
            assert host.startswith("127.0.0.1:"), spec
            ports.append(host.rsplit(":", 1)[0])
    assert len(ports) == len(set(ports))


def test_compose_oddwatch_services_build_and_settings_load() -> None:
    data = compose()
    example = env_example()
    parser = build_parser()
    for flow in ("sensors", "logs", "incidents"):
        svc = data["services"][f"oddwatch-{flow}"]
        build = svc["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).is_file()
        assert svc["command"] == ["up", "--flow", flow]
        assert parser.parse_args(svc["command"]).flow == [flow]
        env = {k: interpolate(str(v), example) for k, v in svc["environment"].items()}
        settings = load_settings(path=None, env=env)
        assert settings.mqtt.host == "mosquitto"
        assert settings.influx.url == "http://influxdb:8086" and settings.influx.version == 1
        assert settings.influx.username == example["ODDWATCH_INFLUX_USER"] and settings.influx.password
        assert not settings.influx.token and "ADMIN" not in " ".join(str(v) for v in svc["environment"].values())
        assert settings.metrics.host == "0.0.0.0"
        # Recovery on: the WAL and snapshots live in the service's own volume.
        assert settings.state.recovery and "--no-recovery" not in svc["command"]
        targets = [m.split(":")[1] for m in svc["volumes"]]
        assert any(settings.state.dir.startswith(t + "/") for t in targets), (settings.state.dir, targets)
        assert svc["stop_signal"] == "SIGTERM"


def test_compose_mounts_grafana_provisioning_where_the_provider_looks() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = dict(m.split(":")[:2] for m in grafana["volumes"])
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(PROVIDER.read_text())["providers"][0]
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    # Every ${VAR} of the datasource file (commented variant too) is given to Grafana.
    needed = set(VAR.findall(DATASOURCE.read_text()))
    assert {name for name, _ in needed} <= set(grafana["environment"])


def test_compose_influxdb_init_script() -> None:
    influx = compose()["services"]["influxdb"]
    assert influx["environment"]["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert "./influxdb/init-dbrp.sh:/docker-entrypoint-initdb.d/init-dbrp.sh:ro" in influx["volumes"]
    script = DEPLOY / "influxdb" / "init-dbrp.sh"
    text = script.read_text()
    assert "influx v1 dbrp create" in text and "--db" in text
    sh = shutil.which("sh")
    if sh:
        assert subprocess.run([sh, "-n", str(script)], capture_output=True).returncode == 0


def test_mosquitto_conf_no_loss_settings() -> None:
    conf = {}
    for line in (DEPLOY / "mosquitto" / "mosquitto.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            conf.setdefault(key, value)
    assert conf["persistence"] == "true"
    assert int(conf["max_queued_messages"]) == MQTT_MAX_QUEUED
    assert int(conf["max_inflight_messages"]) == MQTT_MAX_INFLIGHT
    assert int(conf["max_queued_bytes"]) == MQTT_MAX_QUEUED_BYTES
    assert int(conf["autosave_interval"]) == MQTT_AUTOSAVE_S and conf["autosave_on_changes"] == "false"
    assert conf["listener"] == "1883"
    assert conf["persistence_location"] in {m.split(":")[1] + "/" for m in compose()["services"]["mosquitto"]["volumes"]}


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_paths_exist() -> None:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    copies = [shlex.split(line)[1:-1] for line in lines if line.startswith("COPY ")]
    assert copies
    missing = [src for sources in copies for src in sources if not (ROOT / src).exists()]
    if missing == ["README.md"]:
        pytest.skip("README.md (pyproject's readme, needed by `pip install .`) is not written yet")
    assert not missing, f"Dockerfile copies paths that do not exist: {missing}"
    text = "\n".join(lines)
    assert 'ENTRYPOINT ["oddwatch"]' in text and "USER oddwatch" in text
    (cmd,) = [line for line in lines if line.startswith("CMD ")]
    assert json.loads(cmd.removeprefix("CMD ")) == ["up", "--flow", "sensors"]
    (health,) = [line for line in lines if line.startswith("HEALTHCHECK ")]
    assert health.endswith('CMD ["oddwatch", "health", "sensors"]')


# --- systemd ---------------------------------------------------------------------------------


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) pairs, in order, repeated keys kept."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
            continue
        assert current is not None and "=" in line, f"{path.name}: bad line {raw!r}"
        key, _, value = line.partition("=")
        sections[current].append((key.strip(), value.strip()))
    return sections


@pytest.mark.parametrize("flow", sorted(UNITS))
def test_systemd_unit(flow: str) -> None:
    unit = parse_unit(UNITS[flow])
    assert set(unit) == {"Unit", "Service", "Install"}
    one = {section: dict(pairs) for section, pairs in unit.items()}
    assert one["Unit"]["Description"] and "network-online.target" in one["Unit"]["After"]
    service = one["Service"]
    for key in ("ExecStart", "User", "Group", "EnvironmentFile", "Restart", "StateDirectory", "KillSignal"):
        assert service.get(key), f"{flow}: [Service] {key} missing"
    assert service["User"] == "oddwatch"
    argv = shlex.split(service["ExecStart"])
    assert argv[0].startswith("/") and argv[0].endswith("/oddwatch")
    assert argv[1:] == ["up", "--flow", flow] and build_parser().parse_args(argv[1:]).flow == [flow]
    env = dict(v.split("=", 1) for k, v in unit["Service"] if k == "Environment")
    assert env["ODDWATCH_INFLUX__SPOOL_DIR"].startswith(f"/var/lib/{service['StateDirectory']}")
    settings = load_settings(path=None, env={k: v for k, v in env.items() if k != "ODDWATCH_CONFIG"})
    assert settings.metrics.host == "127.0.0.1"
    # Recovery on, its WAL and snapshots in the unit's state directory; SIGTERM stops it cleanly.
    assert settings.state.recovery and "--no-recovery" not in argv
    assert settings.state.dir.startswith(f"/var/lib/{service['StateDirectory']}/")
    assert service["KillSignal"] == "SIGTERM"
    assert one["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_units_leave_metrics_ports_to_the_settings() -> None:
    # One port per flow, written once in MetricsSettings; a unit overriding it would point
    # Prometheus (and the docs) at nothing.
    settings = load_settings(path=None, env={})
    assert {flow: settings.metrics.port_of(flow) for flow in UNITS} == {"sensors": 9464, "logs": 9465, "incidents": 9466}
    for path in UNITS.values():
        env = dict(v.split("=", 1) for k, v in parse_unit(path)["Service"] if k == "Environment")
        assert not any(k.startswith("ODDWATCH_METRICS__") for k in env), path.name


@pytest.mark.parametrize("flow", sorted(UNITS))
def test_systemd_unit_treats_a_requested_stop_as_success(flow: str) -> None:
    service = dict(parse_unit(UNITS[flow])["Service"])
    # SIGTERM goes to `oddwatch up` alone, which stops the flow and exits 0 (tests/test_up.py);
    # a flow that ends on its own makes it exit non-zero, which Restart=on-failure restarts.
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    assert set(service["SuccessExitStatus"].split()) >= {"SIGTERM"}
    assert "1" not in service["SuccessExitStatus"].split()  # a crash must stay a failure
    assert service["Restart"] == "on-failure"
    assert int(service["TimeoutStopSec"]) >= 30


def test_compose_metrics_ports_match_each_flows_setting() -> None:
    data = compose()
    example = env_example()
    for flow in ("sensors", "logs", "incidents"):
        svc = data["services"][f"oddwatch-{flow}"]
        env = {k: interpolate(str(v), example) for k, v in svc["environment"].items()}
        port = load_settings(path=None, env=env).metrics.port_of(flow)
        (spec,) = svc["ports"]
        assert interpolate(spec, {}).rsplit(":", 1)[1] == str(port), spec


def test_compose_oddwatch_services_have_healthchecks() -> None:
    parser = build_parser()
    for flow in ("sensors", "logs"):
        check = compose()["services"][f"oddwatch-{flow}"]["healthcheck"]
        test = check["test"]
        assert test[0] == "CMD" and test[1] == "oddwatch"
        args = parser.parse_args(test[2:])
        assert args.command == "health" and args.flow == flow
        assert check["start_period"] and check["retries"] >= 1
    for svc in compose()["services"].values():
        assert "healthcheck" in svc


def test_grafana_gets_no_admin_or_write_credentials() -> None:
    grafana = compose()["services"]["grafana"]
    values = " ".join(str(v) for v in grafana["environment"].values())
    for secret in ("INFLUXDB_ADMIN_TOKEN", "INFLUXDB_ADMIN_PASSWORD", "ODDWATCH_INFLUX_PASSWORD"):
        assert secret not in values
    assert grafana["environment"]["INFLUX_USER"] == "${GRAFANA_INFLUX_USER}"
    # ... which the init script creates with read access to the bucket only
    init = (DEPLOY / "influxdb" / "init-dbrp.sh").read_text()
    create = init[init.index("influx v1 auth create --org"):]
    create = create[:create.index("echo")]
    assert '--username "$GRAFANA_INFLUX_USER"' in create and "--read-bucket" in create
    assert "--write-bucket" not in create


def test_health_command_checks_the_flows_own_port(tmp_path: Path) -> None:
    import http.server
    import threading

    from oddwatch.cli import main
    from oddwatch.services import free_port

    port = free_port()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"oddwatch_up 1\n")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    cfg = tmp_path / "oddwatch.toml"
    cfg.write_text(f"[metrics]\nhost = \"0.0.0.0\"\nport = {free_port()}\nlogs_port = {port}\n")
    try:
        assert main(["--config", str(cfg), "health", "logs"]) == 0
        assert main(["--config", str(cfg), "health", "sensors", "--timeout", "1"]) == 1
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- Grafana provisioning --------------------------------------------------------------------


def datasource_uids(node: Any) -> set[str]:
    """Every datasource uid referenced anywhere in a dashboard JSON."""
    found: set[str] = set()
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and "uid" in ds:
            found.add(ds["uid"])
        for value in node.values():
            found |= datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            found |= datasource_uids(value)
    return found


def test_datasource_provisioning() -> None:
    (ds,) = yaml.safe_load(DATASOURCE.read_text())["datasources"]
    assert ds["uid"] == "oddwatch-influx" and ds["type"] == "influxdb"
    assert ds["url"] == "${INFLUX_URL}"
    assert ds["jsonData"]["dbName"] == "oddwatch" and ds["jsonData"]["httpMode"] == "POST"
    text = DATASOURCE.read_text()
    assert "httpHeaderName1: Authorization" in text and "httpHeaderValue1: Token ${INFLUX_TOKEN}" in text
    # The commented 2.x variant is valid YAML once uncommented.
    commented = text[text.index("#  - name:"):].splitlines()
    variant = "\n".join(line[1:] for line in commented if line.startswith("#  "))
    (alt,) = yaml.safe_load("datasources:\n" + variant)["datasources"]
    assert alt["uid"] == ds["uid"] and alt["jsonData"]["httpHeaderName1"] == "Authorization"


def test_dashboards_reference_the_provisioned_datasource() -> None:
    (ds,) = yaml.safe_load(DATASOURCE.read_text())["datasources"]
    boards = sorted(DASHBOARDS.glob("*.json"))
    assert boards
    for path in boards:
        uids = datasource_uids(json.loads(path.read_text())) - {"-- Grafana --"}
        assert uids == {ds["uid"]}, f"{path.name} references {uids}"


def test_dashboard_provider() -> None:
    (provider,) = yaml.safe_load(PROVIDER.read_text())["providers"]
    assert provider["type"] == "file" and provider["folder"] == "oddwatch"
    assert provider["options"]["path"].startswith("/")


def test_flows_write_with_their_own_bucket_user_not_the_admin_token() -> None:
    example = env_example()
    assert example["ODDWATCH_INFLUX_PASSWORD"] != example["INFLUXDB_ADMIN_TOKEN"]
    init = (DEPLOY / "influxdb" / "init-dbrp.sh").read_text()
    create = init[init.index('--username "$ODDWATCH_INFLUX_USER"'):]
    create = create[:create.index("echo")]
    assert "--read-bucket" in create and "--write-bucket" in create


def test_compose_host_ports_can_be_changed_from_the_env_file() -> None:
    example = env_example()
    moved = {k: str(20000 + i) for i, k in enumerate(sorted(k for k in example if k.endswith("_HOST_PORT")))}
    assert len(moved) == 6
    hosts = [interpolate(spec, moved).split(":")[1] for svc in compose()["services"].values()
             for spec in svc.get("ports", [])]
    assert sorted(hosts) == sorted(moved.values())


def test_deploy_readme_dockerfile_and_prometheus_cover_the_three_flows() -> None:
    readme = (DEPLOY / "README.md").read_text()
    assert "the three oddwatch flows" in readme and "oddwatch-{sensors,logs,incidents}.service" in readme
    assert "systemctl enable --now oddwatch-sensors oddwatch-logs oddwatch-incidents" in readme
    assert '"127.0.0.1:9464", "127.0.0.1:9465", "127.0.0.1:9466"' in readme
    assert "EXPOSE 9464 9465 9466" in (DEPLOY / "Dockerfile").read_text()
    install = readme[readme.index("## systemd"):]
    install = install[:install.index("sudo systemctl daemon-reload")]
    assert "deploy/install-torch.sh cpu" in install
    assert install.index("install-torch.sh") < install.index("pip install")  # torch first: no CUDA build pulled
