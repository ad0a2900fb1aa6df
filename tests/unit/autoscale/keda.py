"""The fields KEDA documents for a ScaledObject and its Prometheus trigger, as pydantic models.

No cluster (and so no KEDA CRD) is available here, so deploy/keda-scaledobject.yaml is checked
against these: unknown fields are errors (a typo such as `stabilisationWindowSeconds` would be
silently ignored by a cluster), enumerations and required fields as the docs say. Sources:
keda.sh/docs/2.15/reference/scaledobject-spec (spec, advanced, triggers) and
keda.sh/docs/2.15/scalers/prometheus (trigger metadata); HPA behavior from Kubernetes'
autoscaling/v2 HorizontalPodAutoscalerBehavior. Why hand-written: KEDA publishes its CRD but
kubernetes-validate ships only the core API schemas.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ScaleTargetRef(Strict):
    api_version: str = Field("apps/v1", alias="apiVersion")
    kind: str = "Deployment"
    name: str
    env_source_container_name: str | None = Field(None, alias="envSourceContainerName")


class HPAScalingPolicy(Strict):
    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0)
    period_seconds: int = Field(alias="periodSeconds", gt=0, le=1800)


class HPAScalingRules(Strict):
    stabilization_window_seconds: int | None = Field(
        None, alias="stabilizationWindowSeconds", ge=0, le=3600
    )
    select_policy: Literal["Max", "Min", "Disabled"] | None = Field(None, alias="selectPolicy")
    policies: list[HPAScalingPolicy] | None = None
    tolerance: str | None = None


class HPABehavior(Strict):
    scale_up: HPAScalingRules | None = Field(None, alias="scaleUp")
    scale_down: HPAScalingRules | None = Field(None, alias="scaleDown")


class HPAConfig(Strict):
    name: str | None = None
    behavior: HPABehavior | None = None


class ScalingModifiers(Strict):
    target: str
    activation_target: str | None = Field(None, alias="activationTarget")
    metric_type: Literal["AverageValue", "Value"] | None = Field(None, alias="metricType")
    formula: str


class Advanced(Strict):
    restore_to_original_replica_count: bool | None = Field(
        None, alias="restoreToOriginalReplicaCount"
    )
    horizontal_pod_autoscaler_config: HPAConfig | None = Field(
        None, alias="horizontalPodAutoscalerConfig"
    )
    scaling_modifiers: ScalingModifiers | None = Field(None, alias="scalingModifiers")


class Fallback(Strict):
    failure_threshold: int = Field(alias="failureThreshold", gt=0)
    replicas: int = Field(ge=0)


class AuthenticationRef(Strict):
    name: str
    kind: Literal["TriggerAuthentication", "ClusterTriggerAuthentication"] | None = None


class PrometheusMetadata(Strict):
    """Trigger metadata of `type: prometheus`; KEDA takes every value as a string."""

    server_address: str = Field(alias="serverAddress", pattern=r"^https?://")
    query: str
    threshold: str = Field(pattern=r"^\d+(\.\d+)?$")
    activation_threshold: str | None = Field(
        None, alias="activationThreshold", pattern=r"^\d+(\.\d+)?$"
    )
    namespace: str | None = None
    custom_headers: str | None = Field(None, alias="customHeaders")
    ignore_null_values: Literal["true", "false"] | None = Field(None, alias="ignoreNullValues")
    query_parameters: str | None = Field(None, alias="queryParameters")
    unsafe_ssl: Literal["true", "false"] | None = Field(None, alias="unsafeSsl")
    auth_modes: str | None = Field(None, alias="authModes")


class Trigger(Strict):
    type: str
    name: str | None = None
    metadata: dict[str, str]
    use_cached_metrics: bool | None = Field(None, alias="useCachedMetrics")
    authentication_ref: AuthenticationRef | None = Field(None, alias="authenticationRef")
    metric_type: Literal["AverageValue", "Value", "Utilization"] | None = Field(
        None, alias="metricType"
    )

    @model_validator(mode="after")
    def known_scaler_metadata(self) -> Trigger:
        if self.type == "prometheus":
            PrometheusMetadata.model_validate(self.metadata)
        return self


class ScaledObjectSpec(Strict):
    scale_target_ref: ScaleTargetRef = Field(alias="scaleTargetRef")
    polling_interval: int | None = Field(None, alias="pollingInterval", gt=0)
    cooldown_period: int | None = Field(None, alias="cooldownPeriod", ge=0)
    initial_cooldown_period: int | None = Field(None, alias="initialCooldownPeriod", ge=0)
    idle_replica_count: int | None = Field(None, alias="idleReplicaCount", ge=0)
    min_replica_count: int | None = Field(None, alias="minReplicaCount", ge=0)
    max_replica_count: int | None = Field(None, alias="maxReplicaCount", gt=0)
    fallback: Fallback | None = None
    advanced: Advanced | None = None
    triggers: list[Trigger] = Field(min_length=1)

    @model_validator(mode="after")
    def replica_bounds(self) -> ScaledObjectSpec:
        low, high = self.min_replica_count or 0, self.max_replica_count or 100
        if low > high:
            raise ValueError("minReplicaCount > maxReplicaCount")
        if self.idle_replica_count is not None and self.idle_replica_count >= low:
            raise ValueError("idleReplicaCount must be less than minReplicaCount")
        return self


class ObjectMeta(Strict):
    name: str
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class ScaledObject(Strict):
    api_version: Literal["keda.sh/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ScaledObject"]
    metadata: ObjectMeta
    spec: ScaledObjectSpec
