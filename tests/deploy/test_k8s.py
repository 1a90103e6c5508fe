"""deploy/k8s/ is valid Kubernetes and agrees with the code: every document passes
kubernetes-validate's strict schemas of a pinned Kubernetes version; settings, commands,
probe paths, ports, queues and the autoscaler's metric are the ones visionq has."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.cli_parsing import is_group, parse_celery, parse_visionq
from tests.deploy.deployfiles import ROOT, flower_options, http_paths, service_argv
from visionq.models.broker import JOBS_QUEUE, WEBHOOKS_QUEUE
from visionq.models.metrics import PREFIX
from visionq.models.metrics_cluster import LANES
from visionq.models.settings import Settings, get_settings

K8S = ROOT / "deploy" / "k8s"
# The oldest Kubernetes the files must work on; kubernetes-validate bundles its schemas.
KUBERNETES_VERSION = "1.34.0"
# Not a Kubernetes object: kustomize's own file (its resources are checked below).
KUSTOMIZATION = "kustomization.yaml"
# Applied on their own, not by `kubectl apply -k` (see the files' comments).
NOT_IN_KUSTOMIZATION = {"secret.example.yaml", "migrate-job.yaml"}
# Variables other than VISIONQ_* the containers get: the Gemini key (the SDK's name) and
# the object store's keys (botocore's names, read by s3fs).
OTHER_VARIABLES = {"GEMINI_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
# Each Deployment of the visionq image and the compose service running the same command.
COMPOSE_SERVICE = {
    "visionq-api": "api",
    "visionq-worker": "worker",
    "visionq-sweeper": "worker",
    "visionq-flower": "flower",
    "visionq-migrate": "migrate",
}

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason='kubernetes-validate is not installed: pip install -e ".[dev]"'
)


@functools.cache
def documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(file name, document) of every Kubernetes object in deploy/k8s/."""
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == KUSTOMIZATION:
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is not None:
                found.append((path.name, document))
    return tuple(found)


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == kind}


def workloads() -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, pod spec) of every Deployment and Job."""
    for kind in ("Deployment", "Job"):
        for name, doc in objects(kind).items():
            yield name, doc["spec"]["template"]["spec"]


def containers() -> list[tuple[str, dict[str, Any]]]:
    return [(name, c) for name, pod in workloads() for c in pod["containers"]]


def config() -> dict[str, str]:
    """The ConfigMap's and the example Secret's variables together, as envFrom gives them."""
    (configmap,) = objects("ConfigMap").values()
    (secret,) = objects("Secret").values()
    return {**configmap["data"], **secret["stringData"]}


def argv_of(name: str) -> list[str]:
    (container,) = dict(workloads())[name]["containers"]
    return [str(word) for word in container["command"]]


@pytest.mark.parametrize(
    "document",
    [pytest.param(doc, id=f"{file}:{doc['kind']}/{doc['metadata']['name']}")
     for file, doc in documents()],
)  # fmt: skip
def test_every_document_is_valid_kubernetes(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_file_applied_together() -> None:
    kustomization = yaml.safe_load((K8S / KUSTOMIZATION).read_text(encoding="utf-8"))
    files = {path.name for path in K8S.glob("*.yaml")} - {KUSTOMIZATION}
    assert sorted(kustomization["resources"]) == sorted(files - NOT_IN_KUSTOMIZATION)


def test_every_variable_is_a_setting_and_read_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    variables = dict(config())
    for _, container in containers():
        variables |= {item["name"]: item["value"] for item in container.get("env", [])}
    for key in list(os.environ):
        if key.startswith("VISIONQ_") or key in OTHER_VARIABLES:
            monkeypatch.delenv(key)
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    settings = get_settings()  # invalid JSON or values raise here
    for key in variables:
        if key in OTHER_VARIABLES:
            continue
        field = key.removeprefix("VISIONQ_").lower()
        assert key.startswith("VISIONQ_") and field in Settings.model_fields, f"{key}: no setting"
    assert settings.gemini_key() == config()["GEMINI_API_KEY"]
    assert settings.database_url.startswith("postgresql://"), "pods cannot share SQLite"
    assert "://" in settings.blob_dir, "pods cannot share a local blob directory"


def test_every_container_gets_the_configuration_and_has_resources() -> None:
    (configmap,), (secret,) = objects("ConfigMap"), objects("Secret")
    for name, container in containers():
        sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert configmap in sources, f"{name} misses the ConfigMap"
        if name != "visionq-flower":  # Celery's UI needs the broker only
            assert secret in sources, f"{name} misses the Secret"
        resources = container["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys() <= resources["limits"].keys()


@pytest.mark.parametrize("name", sorted(COMPOSE_SERVICE))
def test_commands_are_real_and_those_of_compose(name: str) -> None:
    argv = argv_of(name)
    compose = service_argv(COMPOSE_SERVICE[name])
    ctx = parse_visionq(argv) if argv[0] == "visionq" else parse_celery(argv)
    same = parse_visionq(compose) if compose[0] == "visionq" else parse_celery(compose)
    assert not is_group(ctx.command)
    assert ctx.command_path == same.command_path
    if ctx.command_path == "celery flower":
        assert flower_options(ctx.params["tornado_argv"]) == flower_options(
            same.params["tornado_argv"]
        )


def test_workers_consume_every_queue_and_one_deployment_sweeps() -> None:
    queues: set[str] = set()
    sweeping = []
    for name in ("visionq-worker", "visionq-sweeper"):
        queues |= set(parse_visionq(argv_of(name)).params["queues"].split(","))
        (container,) = dict(workloads())[name]["containers"]
        env = {item["name"]: item["value"] for item in container.get("env", [])}
        if env.get("VISIONQ_SWEEPER_ENABLED", "true") == "true":
            sweeping.append(name)
    assert queues == {JOBS_QUEUE, WEBHOOKS_QUEUE}, "a queue nobody consumes never drains"
    assert sweeping == ["visionq-sweeper"]


def test_api_probes_are_routes_on_the_port_it_listens_on() -> None:
    from visionq.api.app import create_app

    ctx = parse_visionq(argv_of("visionq-api"))
    (container,) = dict(workloads())["visionq-api"]["containers"]
    assert ctx.params["host"] == "0.0.0.0"
    assert [p["containerPort"] for p in container["ports"]] == [ctx.params["port"]]
    routes = http_paths(create_app())
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz" in routes
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in routes


def test_api_readiness_survives_a_newer_schema_and_resting_workers() -> None:
    """The migration Job moves the schema ahead of the old API pods, and workers may all be
    restarting: /readyz then says 503 (it means "a job can run end to end"), yet the API can
    still take and queue jobs, so the Service's readiness must not be /readyz."""
    from visionq.api.routes.health import _migrations

    assert _migrations("9999_from_a_newer_visionq").startswith("error: at 9999")
    (container,) = dict(workloads())["visionq-api"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] != "/readyz"
    assert "/readyz" in (K8S / "README.md").read_text(encoding="utf-8")


def test_images_are_pinned_in_one_place() -> None:
    """Not :latest (pull policy Always, and no telling which build runs); kustomization.yaml
    sets every Deployment's image, and the Job applied on its own names the same one."""
    kustomization = yaml.safe_load((K8S / KUSTOMIZATION).read_text(encoding="utf-8"))
    (entry,) = kustomization["images"]
    pinned = f"{entry['newName']}:{entry['newTag']}"
    assert entry["newTag"] != "latest"
    for name, container in containers():
        image = container["image"]
        repository, _, tag = image.rpartition(":")
        assert tag and tag != "latest" and "/" not in tag, f"{name}: {image} has no pinned tag"
        assert repository == entry["name"], f"{name}: kustomization.yaml does not set {image}"
        assert container["imagePullPolicy"] == "IfNotPresent", name
    (job,) = objects("Job").values()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == pinned, "migrate-job.yaml runs another build than the rest"


@pytest.mark.parametrize("name", ["visionq-api", "visionq-worker", "visionq-sweeper"])
def test_prometheus_is_told_where_each_pod_serves_metrics(name: str) -> None:
    """The HPA's metric comes from Prometheus, which must scrape the API (prometheus-adapter
    scrapes nothing); the workers' own metrics likewise."""
    from visionq.api.routes import metrics

    template = objects("Deployment")[name]["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    (container,) = template["spec"]["containers"]
    ports = [p["containerPort"] for p in container["ports"]]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) in ports
    assert annotations["prometheus.io/path"] == "/metrics"
    assert "/metrics" in {getattr(route, "path", "") for route in metrics.router.routes}


def test_the_autoscaled_deployment_leaves_the_replica_count_to_the_hpa() -> None:
    (hpa,) = objects("HorizontalPodAutoscaler").values()
    target = objects("Deployment")[hpa["spec"]["scaleTargetRef"]["name"]]
    assert "replicas" not in target["spec"], "every kubectl apply would reset the HPA's count"


def test_readme_pod_monitor_example_is_valid() -> None:
    """The Prometheus Operator's PodMonitor in deploy/k8s/README.md selects the API pods and
    scrapes their named port at /metrics."""
    text = (K8S / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    (monitor,) = [d for b in blocks for d in yaml.safe_load_all(b) if d and d.get("kind") ==
                  "PodMonitor"]  # fmt: skip
    labels = objects("Deployment")["visionq-api"]["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    assert endpoint["authorization"]["credentials"]["key"] == "VISIONQ_METRICS_TOKEN"


@pytest.mark.parametrize("name", ["visionq-worker", "visionq-sweeper"])
def test_worker_liveness_probes_its_metrics_port(name: str) -> None:
    """The worker's only HTTP is its metrics port: served on the pod's address (not the
    default loopback, which the kubelet cannot reach) at the port the probe names."""
    settings = config()
    (container,) = dict(workloads())[name]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe = container["livenessProbe"]["httpGet"]
    assert ports[probe["port"]] == int(settings["VISIONQ_WORKER_METRICS_PORT"])
    assert settings["VISIONQ_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert "VISIONQ_METRICS_TOKEN" not in settings, "a token makes this probe fail (401)"


def test_worker_grace_period_covers_one_gemini_call() -> None:
    pod = dict(workloads())["visionq-worker"]
    assert pod["terminationGracePeriodSeconds"] > Settings.model_fields["gemini_timeout_s"].default


def test_services_select_a_deployment_and_name_its_ports() -> None:
    deployments = objects("Deployment")
    for name, service in objects("Service").items():
        pod = deployments[name]["spec"]["template"]
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        named = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= named


def test_flower_probe_is_a_flower_route() -> None:
    from flower.urls import handlers

    (container,) = dict(workloads())["visionq-flower"]["containers"]
    routes = {h.regex.pattern if hasattr(h, "regex") else h[0] for h in handlers}
    assert container["livenessProbe"]["httpGet"]["path"] in routes


def test_autoscaler_scales_the_workers_on_the_queue_gauge() -> None:
    from visionq.api.routes import metrics

    (hpa,) = objects("HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] in objects("Deployment")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "visionq-worker"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == f"{PREFIX}_queue_jobs"
    assert metric["external"]["metric"]["selector"]["matchLabels"]["lane"] in LANES
    # Where Prometheus reads the gauge (a route left out of the OpenAPI document).
    assert "/metrics" in {getattr(route, "path", "") for route in metrics.router.routes}


def test_readme_points_to_these_files() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "deploy/k8s" in readme
    assert (K8S / "README.md").exists()
