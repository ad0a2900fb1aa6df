"""deploy/ validated offline: core objects against the Kubernetes schemas (kubernetes-validate,
strict: unknown fields fail), the ScaledObject against KEDA's documented fields (keda.py), and
both against the settings the local autoscaler uses, so the two actuators agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pydantic
import pytest
import yaml

from autoscale.decision import cap_for
from autoscale.supervisor import policy_from
from config.settings import Settings
from tests.unit.autoscale.keda import ScaledObject

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
K8S_VERSION = "1.30.0"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def core_objects() -> list[dict[str, Any]]:
    return [d for name in ("worker.yaml", "lag-exporter.yaml") for d in documents(name)]


@pytest.mark.parametrize(
    "obj", core_objects(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}"
)
def test_core_objects_validate_against_the_kubernetes_schema(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_validator_catches_a_misspelt_field() -> None:
    deployment = documents("worker.yaml")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_worker_readiness_is_health_on_the_worker_web_port() -> None:
    settings = Settings()
    deployment, service = documents("worker.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"name": "http", "containerPort": settings.web_port}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RUNWAY_APP_ID"] == settings.app_id == "ground_truth_join"
    assert env["RUNWAY_WEB_PORT"] == str(settings.web_port)


def test_each_worker_pod_is_a_static_member_named_after_itself() -> None:
    """Static membership keeps a restarted pod's partitions (docs/capacity.md): its
    group.instance.id is the pod's name, stable across restarts of a StatefulSet's pod, and
    the session timeout outlasts a restart yet stays within the broker's default
    group.max.session.timeout.ms (30 min)."""
    statefulset = documents("worker.yaml")[0]
    assert statefulset["kind"] == "StatefulSet"
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    source = env["RUNWAY_GROUP_INSTANCE_ID"]["valueFrom"]
    assert source == {"fieldRef": {"fieldPath": "metadata.name"}}
    session_s = float(env["RUNWAY_SESSION_TIMEOUT_S"]["value"])
    assert 120 <= session_s <= 1800
    assert Settings(group_instance_id="runway-worker-0", session_timeout_s=session_s)


def test_scaled_object_has_only_fields_keda_documents() -> None:
    (doc,) = documents("keda-scaledobject.yaml")
    ScaledObject.model_validate(doc)
    bad = yaml.safe_load(yaml.safe_dump(doc))
    bad["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"][
        "stabilisationWindowSeconds"
    ] = 300
    with pytest.raises(pydantic.ValidationError):
        ScaledObject.model_validate(bad)
    bad = yaml.safe_load(yaml.safe_dump(doc))
    del bad["spec"]["triggers"][0]["metadata"]["threshold"]
    with pytest.raises(pydantic.ValidationError):
        ScaledObject.model_validate(bad)


def test_scaled_object_matches_the_local_autoscaler_settings() -> None:
    settings = Settings()
    policy = policy_from(settings)
    (doc,) = documents("keda-scaledobject.yaml")
    so = ScaledObject.model_validate(doc).spec
    cap, capped = cap_for(policy, settings.partitions)
    assert (so.min_replica_count, so.max_replica_count, capped) == (4, 16, True)
    assert so.min_replica_count == policy.min_workers and so.max_replica_count == cap
    assert so.scale_target_ref.name == documents("worker.yaml")[0]["metadata"]["name"]
    hpa = so.advanced.horizontal_pod_autoscaler_config  # type: ignore[union-attr]
    down = hpa.behavior.scale_down  # type: ignore[union-attr]
    up = hpa.behavior.scale_up  # type: ignore[union-attr]
    assert down.stabilization_window_seconds == policy.stabilization_s == 300  # type: ignore[union-attr]
    assert [(p.type, p.value, p.period_seconds) for p in down.policies] == [  # type: ignore[union-attr]
        ("Pods", 1, policy.cooldown_s)
    ]
    assert [p.period_seconds for p in up.policies] == [policy.cooldown_s]  # type: ignore[union-attr]
    (trigger,) = so.triggers
    assert (trigger.type, trigger.metric_type) == ("prometheus", "Value")
    assert float(trigger.metadata["threshold"]) == policy.scale_up_lag_s == 300
    query = " ".join(trigger.metadata["query"].split())
    group = f'runway_consumer_lag_seconds{{group="{settings.app_id}"}}'
    assert query == (
        f"(max({group}) < {policy.scale_down_lag_s:g}) "
        f"or clamp_min(max({group}), {policy.scale_up_lag_s:g})"
    )


def test_lag_exporter_serves_the_metric_keda_queries() -> None:
    deployment, service = documents("lag-exporter.yaml")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["lag", "--watch"]
    port = int(args[args.index("--metrics-port") + 1])
    assert service["spec"]["ports"][0]["port"] == port
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(port)
