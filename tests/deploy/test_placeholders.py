"""The placeholders shipped in deploy/ never run: web and Flower, started with the exact
commands and Secret of deploy/k8s, refuse to start, naming the setting to replace; and
every Flower (Procfile, compose, k8s) goes through `crier flower`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.flower import FlowerAuthMissing, check_flower_auth
from app.security import (
    InsecureSecretKey,
    PlaceholderCredential,
    check_secret_key,
    check_service_urls,
    generate_secret_key,
)

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"
BIN = str(Path(sys.executable).parent)


def k8s(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((BASE / name).read_text()) if d]


def shipped_secret() -> dict[str, str]:
    [secret] = k8s("secret.yaml")
    return dict(secret["stringData"])


def shipped_config() -> dict[str, str]:
    [config] = k8s("config.yaml")
    return dict(config["data"])


def command_of(name: str) -> list[str]:
    [deployment] = [d for d in k8s(name) if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return list(container["command"])


def test_the_shipped_secret_values_are_refused() -> None:
    shipped = shipped_secret()
    with pytest.raises(InsecureSecretKey, match="CRIER_SECRET_KEY is a published default"):
        check_secret_key(shipped["CRIER_SECRET_KEY"])
    with pytest.raises(PlaceholderCredential, match="DATABASE_URL has a placeholder password"):
        check_service_urls({"DATABASE_URL": shipped["DATABASE_URL"]})
    with pytest.raises(FlowerAuthMissing, match="FLOWER_BASIC_AUTH"):
        check_flower_auth({"FLOWER_BASIC_AUTH": shipped["FLOWER_BASIC_AUTH"]})


@pytest.mark.parametrize(
    "value",
    [
        "change-me-to-a-long-random-string-please",
        "REPLACE-WITH-YOUR-OWN-64-CHARACTER-VALUE",
        "my-placeholder-secret-key-0123456789",
    ],
)
def test_placeholder_looking_secrets_are_refused(value: str) -> None:
    with pytest.raises(InsecureSecretKey, match="is a placeholder value"):
        check_secret_key(value)
    with pytest.raises(FlowerAuthMissing, match="placeholder"):
        check_flower_auth({"FLOWER_BASIC_AUTH": f"ops:{value}"})
    with pytest.raises(PlaceholderCredential):
        check_service_urls({"REDIS_URL": f"redis://:{value}@redis:6379/0"})


def test_a_placeholder_metrics_token_is_refused(app_settings: dict[str, Any]) -> None:
    from app import create_app

    with pytest.raises(InsecureSecretKey, match="CRIER_METRICS_TOKEN is a placeholder"):
        create_app({**app_settings, "metrics_token": "change-me"})


def test_real_values_pass() -> None:
    check_secret_key(generate_secret_key())
    assert check_flower_auth({"FLOWER_BASIC_AUTH": "ops:" + generate_secret_key()}) == "basic"
    check_service_urls(
        {
            "DATABASE_URL": "postgresql+psycopg://crier:crier@postgres:5432/crier",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "CELERY_BROKER_URL": None,
        }
    )
    with pytest.raises(FlowerAuthMissing, match="too uniform"):
        check_flower_auth({"FLOWER_BASIC_AUTH": "ops:" + "ab" * 10})


def test_every_flower_runs_through_crier_flower() -> None:
    assert command_of("flower.yaml")[:2] == ["crier", "flower"]
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    assert compose["services"]["flower"]["command"][:2] == ["crier", "flower"]
    procfile = (ROOT / "Procfile").read_text()
    assert "flower: crier flower " in procfile
    for path in [ROOT / "Procfile", *(ROOT / "deploy").rglob("*.y*ml"), ROOT / "deploy/Dockerfile"]:
        assert "celery flower" not in path.read_text().replace("`celery flower`", "")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A k8s container command, on free loopback ports and with one gunicorn worker (each
    worker refuses alike; a second only doubles the imports); a refusal ends it within
    seconds (a process that starts instead runs into the timeout, which fails the test)."""
    port = str(_free_port())
    command = [
        "--bind=127.0.0.1:" + port
        if arg.startswith("--bind=")
        else "--workers=1"
        if arg.startswith("--workers=")
        else "--address=127.0.0.1"
        if arg.startswith("--address=")
        else f"--port={port}"
        if arg.startswith("--port=")
        else arg
        for arg in command
    ]
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CRIER_", "FLOWER_"))},
        **env,
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    return subprocess.run(
        command, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=90
    )


def _run_each(command: list[str], *envs: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    """`_run` once per environment, all at once: each start is seconds of imports."""
    with ThreadPoolExecutor(len(envs)) as pool:
        return list(pool.map(lambda env: _run(command, env), envs))


@pytest.mark.parametrize(("manifest", "refusal"), [("web.yaml", "crier web refuses to start")])
def test_the_k8s_web_refuses_the_shipped_secret(
    app_settings: dict[str, Any], manifest: str, refusal: str, tmp_path: Path
) -> None:
    env = {**shipped_config(), **shipped_secret(), "CRIER_MEDIA_DIR": str(tmp_path)}
    env["CRIER_LOG_FORMAT"] = "keyvalue"
    # With a real key, the placeholder database password is the next refusal.
    real_key = {**env, "CRIER_SECRET_KEY": generate_secret_key()}
    done, then = _run_each(command_of(manifest), env, real_key)
    assert done.returncode != 0
    assert f"{refusal}: CRIER_SECRET_KEY is a published default value" in done.stderr, done.stderr[
        -2000:
    ]
    done = then
    assert done.returncode != 0
    assert f"{refusal}: DATABASE_URL has a placeholder password" in done.stderr, done.stderr[-2000:]


def test_the_k8s_flower_refuses_each_shipped_placeholder(
    app_settings: dict[str, Any], tmp_path: Path
) -> None:
    env = {**shipped_config(), **shipped_secret(), "CRIER_MEDIA_DIR": str(tmp_path)}
    # With real credentials, the published secret key is the next refusal.
    real_auth = {**env, "FLOWER_BASIC_AUTH": "ops:" + generate_secret_key()}
    done, then = _run_each(command_of("flower.yaml"), env, real_auth)
    assert done.returncode != 0
    assert "crier flower refuses to start: FLOWER_BASIC_AUTH" in done.stderr, done.stderr[-2000:]

    done = then
    assert done.returncode != 0
    assert "refuses to start: CRIER_SECRET_KEY is a published default" in done.stderr, done.stderr[
        -2000:
    ]
