"""deploy/k8s: every manifest validates against the Kubernetes schemas
(kubernetes-validate), the kustomize overlays build, and the pieces fit together."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.queues import queue_names

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
VERSION = kubernetes_validate.latest_version()


def manifest_files() -> list[Path]:
    return sorted(
        p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml" and "patch" not in p.name
    )


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def validate(doc: dict[str, Any]) -> None:
    if doc["kind"] in KEDA_KINDS:
        check_keda(doc)
        return
    kubernetes_validate.validate(doc, VERSION, strict=True)


def check_keda(doc: dict[str, Any]) -> None:
    """KEDA's CRDs have no schema in kubernetes-validate: check what the tests rely on."""
    assert doc["apiVersion"] == "keda.sh/v1alpha1"
    spec = doc["spec"]
    if doc["kind"] == "TriggerAuthentication":
        for ref in spec["secretTargetRef"]:
            assert ref["name"] == "crier-secrets" and ref["parameter"] and ref["key"]
        return
    assert spec["scaleTargetRef"]["name"] == doc["metadata"]["name"]
    assert 0 < spec["minReplicaCount"] <= spec["maxReplicaCount"]
    for trigger in spec["triggers"]:
        assert trigger["type"] in ("redis", "rabbitmq")
        queue = trigger["metadata"].get("listName") or trigger["metadata"].get("queueName")
        assert queue in queue_names()


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_validates(path: Path) -> None:
    docs = documents(path.read_text())
    assert docs
    for doc in docs:
        validate(doc)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return documents(result.stdout)


needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (for `kubectl kustomize`) is not installed"
)


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_overlay_builds_and_validates(overlay: Path) -> None:
    docs = kustomize(overlay)
    for doc in docs:
        validate(doc)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "crier"
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    broker = "rabbitmq" if overlay.name == "rabbitmq" else "redis"
    assert scaled and all(t["type"] == broker for d in scaled for t in d["spec"]["triggers"])
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert secret["stringData"]["CELERY_BROKER_URL"].startswith("amqp://") == (broker == "rabbitmq")


def base_docs() -> list[dict[str, Any]]:
    return [d for p in sorted(BASE.glob("*.yaml")) for d in documents(p.read_text())]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in base_docs() if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_workers_cover_every_queue_and_scale_on_their_own() -> None:
    deployments = by_kind("Deployment")
    scaled = by_kind("ScaledObject")
    workers = {n: d for n, d in deployments.items() if n.startswith("crier-worker-")}
    consumed: list[str] = []
    for name, deployment in workers.items():
        command = container(deployment)["command"]
        [queues] = [a.split("=", 1)[1] for a in command if a.startswith("--queues=")]
        consumed += queues.split(",")
        triggers = scaled[name]["spec"]["triggers"]
        assert sorted(t["metadata"]["listName"] for t in triggers) == sorted(queues.split(","))
        probe = " ".join(container(deployment)["livenessProbe"]["exec"]["command"])
        assert "inspect ping" in probe
        assert name in by_kind("PodDisruptionBudget")
    assert sorted(consumed) == sorted(queue_names())


def test_every_pod_requests_resources_and_reads_secrets_from_the_secret() -> None:
    pods = [d["spec"]["template"] for d in base_docs() if d["kind"] in ("Deployment", "Job")]
    for pod in pods:
        for spec in pod["spec"]["containers"]:
            assert spec["resources"]["requests"]["cpu"] and spec["resources"]["requests"]["memory"]
            refs = [s.get("secretRef", {}).get("name") for s in spec["envFrom"]]
            assert "crier-secrets" in refs
            for env in spec.get("env", []):
                assert env["name"] not in ("DATABASE_URL", "CRIER_SECRET_KEY", "REDIS_URL")


def test_web_beat_flower_and_migrations() -> None:
    deployments = by_kind("Deployment")
    web = container(deployments["crier-web"])
    assert web["readinessProbe"]["httpGet"]["path"] == "/health"
    assert web["livenessProbe"]["httpGet"]["path"] == "/health"
    [hpa] = by_kind("HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "crier-web"
    assert "crier-web" in by_kind("PodDisruptionBudget")
    beat = deployments["crier-beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    flower = deployments["crier-flower"]
    assert "FLOWER_BASIC_AUTH" in by_kind("Secret")["crier-secrets"]["stringData"]
    assert "--basic-auth" not in " ".join(container(flower)["command"])  # read from the env
    [job] = by_kind("Job").values()
    assert container(job)["command"] == ["crier", "migrate"]
