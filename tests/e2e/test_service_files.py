"""The files that run ptm-sync as a service: the systemd unit, the container image, compose.

systemd does not run here, and no image registry is reachable.  So:

* the unit is rated by `systemd-analyze security --offline=true` and checked by
  `systemd-analyze verify` where systemd-analyze is installed (Debian's `systemd` package);
  its directives are checked as text everywhere;
* the Containerfile is built where podman, buildah or a docker daemon runs AND its base image
  is already present (nothing can be pulled); everywhere else its stages, user, health check
  and ports are checked as text, and its health-check command is run against a real HTTP
  server;
* compose.yaml is parsed, and the config it mounts is loaded by ptm-sync's own loader.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ptm_sync.config import settings as config_mod

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "config" / "ptm-sync.service"
CONTAINERFILE = ROOT / "Containerfile"
COMPOSE = ROOT / "compose.yaml"
README = ROOT / "README.md"

#: The README installs the venv here and the unit runs the command from it.
VENV = "/opt/ptm-sync"


def unit_directives() -> dict[str, list[str]]:
    """``Key=value`` lines of the unit, every value of a key in order (comments left out)."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key, []).append(value)
    return found


# --- the systemd unit ---------------------------------------------------------------------


def test_the_unit_is_a_notify_service_with_a_watchdog_state_and_config_directories() -> None:
    d = unit_directives()
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] and d["WatchdogSec"][0] not in ("", "0", "infinity")
    assert d["StateDirectory"] == ["ptm-sync"] and d["ConfigurationDirectory"] == ["ptm-sync"]
    assert d["UMask"] == ["0077"]
    assert d["User"] == ["ptm-sync"] or d.get("DynamicUser") == ["yes"]
    assert d["ExecStart"] == [f"{VENV}/bin/ptm-sync run"]
    assert d["Environment"] == ["PTM_SYNC_CONFIG=/etc/ptm-sync/ptm-sync.toml"]
    # The database lives where the unit may write: its state folder.
    assert d["ProtectSystem"] == ["strict"] and d["WorkingDirectory"] == ["/var/lib/ptm-sync"]


def test_the_unit_takes_away_capabilities_system_calls_and_namespaces() -> None:
    d = unit_directives()
    assert d["CapabilityBoundingSet"] == [""] and d["NoNewPrivileges"] == ["yes"]
    assert "@system-service" in d["SystemCallFilter"]
    assert d["SystemCallArchitectures"] == ["native"]
    assert d["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    for key in (
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "PrivateDevices",
        "LockPersonality",
        "MemoryDenyWriteExecute",
        "RestrictNamespaces",
        "RestrictSUIDSGID",
        "ProtectHome",
    ):
        assert d.get(key) == ["yes"], key
    assert d["ProtectProc"] == ["invisible"]


def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip(
            "systemd-analyze is not installed (apt-get install systemd): "
            "the unit's directives are checked as text only"
        )
    return tool


def test_systemd_analyze_security_rates_the_unit_ok() -> None:
    result = subprocess.run(
        [analyze(), "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 4.0, result.stdout


def test_systemd_analyze_verify_finds_nothing_wrong_with_the_unit(tmp_path: Path) -> None:
    """Verified with ExecStart pointing at this checkout's command (verify insists that the
    program exists); everything else as it is installed."""
    tool = analyze()
    here = shutil.which("ptm-sync", path=str(Path(sys.executable).parent))
    if here is None:
        pytest.skip("no ptm-sync command beside this Python to stand in for the installed one")
    text = UNIT.read_text(encoding="utf-8")
    assert f"{VENV}/bin/ptm-sync" in text
    unit = tmp_path / "ptm-sync.service"
    unit.write_text(text.replace(f"{VENV}/bin/ptm-sync", here), encoding="utf-8")
    result = subprocess.run(
        [tool, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


# --- the container image ------------------------------------------------------------------


def stages() -> list[list[str]]:
    """The Containerfile's instructions by stage, continuation lines joined."""
    text = CONTAINERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    result: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def test_the_image_builds_in_one_stage_and_runs_from_another_without_compilers() -> None:
    build, final = stages()
    assert build[0].split()[-2:] == ["AS", "build"]
    assert any("pip wheel" in line for line in build)
    assert any("build-essential" in line for line in build)
    final_text = "\n".join(final)
    for compiler in ("build-essential", "gcc", "g++", "clang", "apt-get install"):
        assert compiler not in final_text, compiler
    # Only wheels from the build stage: no index, no source tree.
    install = next(line for line in final if "pip install" in line)
    assert "--no-index" in install and "from=build" in install
    assert not any(line.startswith("COPY ") and "--from" not in line for line in final)


def test_the_image_runs_as_an_unprivileged_user_with_state_in_a_volume() -> None:
    final = stages()[-1]
    user = [line.split()[1] for line in final if line.startswith("USER ")]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert 'VOLUME ["/var/lib/ptm-sync"]' in final
    assert "EXPOSE 8080" in final
    assert any("PTM_SYNC_CONFIG=/etc/ptm-sync/ptm-sync.toml" in line for line in final)
    assert 'ENTRYPOINT ["ptm-sync"]' in final and 'CMD ["run"]' in final


def health_command() -> list[str]:
    line = next(line for line in stages()[-1] if line.startswith("HEALTHCHECK "))
    command: list[str] = json.loads(line.split(" CMD ", 1)[1])
    return command


class _Health(http.server.BaseHTTPRequestHandler):
    answer = 200

    def do_GET(self) -> None:
        body = b'{"status": "ok"}' if self.answer == 200 else b'{"status": "degraded"}'
        self.send_response(self.answer if self.path == "/healthz" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("Health", (_Health,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_the_health_check_passes_on_200_and_fails_on_503_and_when_nothing_listens(
    health_server: tuple[str, type[_Health]],
) -> None:
    """The image's HEALTHCHECK command itself (python's urllib: no curl in the image), with
    its URL pointed at a server of the test's."""
    command = health_command()
    assert command[:2] == ["python", "-c"] and "http://127.0.0.1:8080/healthz" in command[2]
    url, handler = health_server

    def check(target: str) -> int:
        code = command[2].replace("http://127.0.0.1:8080", target)
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
        return run.returncode

    assert check(url) == 0
    handler.answer = 503
    assert check(url) != 0
    server_gone = url.rsplit(":", 1)[0] + ":1"
    assert check(server_gone) != 0


def test_the_build_context_leaves_out_the_venv_and_the_history() -> None:
    ignored = (ROOT / ".containerignore").read_text(encoding="utf-8")
    assert (ROOT / ".dockerignore").read_text(encoding="utf-8") == ignored
    entries = {line.strip() for line in ignored.splitlines() if not line.startswith("#")}
    assert {".git", ".venv", "tests"} <= entries
    copied = {line.split()[1] for line in stages()[0] if line.startswith("COPY ")}
    assert not copied & entries


def container_builder() -> list[str] | None:
    """A command that builds images here, or None (and why, for the skip)."""
    for tool in ("podman", "buildah"):
        if shutil.which(tool):
            return [tool, "build"] if tool == "podman" else [tool, "bud"]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True).returncode == 0:
        return [docker, "build"]
    return None


def test_the_image_builds_where_a_builder_runs_and_its_base_is_here() -> None:
    builder = container_builder()
    if builder is None:
        pytest.skip(
            "no podman, buildah or docker daemon here: the Containerfile is checked as text"
        )
    base = next(
        line.split("=", 1)[1]
        for line in CONTAINERFILE.read_text().splitlines()
        if line.startswith("ARG PYTHON_IMAGE=")
    )
    inspect = [builder[0], "image", "inspect", base]
    if subprocess.run(inspect, capture_output=True).returncode != 0:
        pytest.skip(f"the base image {base} is not here and no registry is reachable")
    result = subprocess.run(
        [*builder, "-f", str(CONTAINERFILE), "-t", "localhost/ptm-sync:test", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


# --- compose.yaml ---------------------------------------------------------------------------


@pytest.fixture
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML (which caldav brings) reads compose.yaml")
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def test_compose_runs_the_daemon_on_postgresql_with_secrets_as_files(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    db, app = services["db"], services["ptm-sync"]
    assert db["image"].split("/")[-1].startswith("postgres:")
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert app["build"]["dockerfile"] == "Containerfile"
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert "healthcheck" in db
    # Every secret is a file, none is in the environment in clear.
    assert all(set(s) == {"file"} for s in compose["secrets"].values())
    assert not any("PASSWORD=" in str(v) for v in app.get("environment", {}).values())
    mounted = {v.split(":")[1]: v.split(":")[0] for v in app["volumes"]}
    assert mounted["/var/lib/ptm-sync"] in compose["volumes"]  # a named volume
    assert app["environment"]["PGPASSFILE"] == "/run/secrets/pgpass"
    assert "pgpass" in app["secrets"]
    assert app.get("read_only") is True and app["cap_drop"] == ["ALL"]


def test_the_config_compose_mounts_loads_and_names_only_mounted_secrets(
    compose: dict[str, Any],
) -> None:
    """compose.yaml's header copies config/compose/ptm-sync.toml to the file it mounts."""
    app = compose["services"]["ptm-sync"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in app["volumes"]}
    assert mounted["/etc/ptm-sync/ptm-sync.toml"] == "./ptm-sync.toml"
    header = COMPOSE.read_text(encoding="utf-8")
    assert "cp config/compose/ptm-sync.toml ptm-sync.toml" in header
    source = ROOT / "config" / "compose" / "ptm-sync.toml"
    loaded = config_mod.load(str(source))
    assert loaded.database.url.startswith("postgresql+psycopg://") and "@db:" in loaded.database.url
    assert loaded.web.listen == "0.0.0.0:8080"
    named = set(re.findall(r"/run/secrets/(\w+)", source.read_text(encoding="utf-8")))
    assert named and named <= set(app["secrets"])
    # What the header tells the administrator to create is what compose mounts.
    created = set(re.findall(r"> secrets/(\w+)", header))
    assert {Path(s["file"]).name for s in compose["secrets"].values()} <= created
