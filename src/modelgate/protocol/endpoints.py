"""Control-plane wire models: serving endpoints, served entities, traffic, AI Gateway, tags (reference §5).

Input models reject unknown fields at the top level so typos surface; the `external_model` object keeps its
`<provider>_config` key open here and the provider's own config model validates it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from modelgate.protocol.common import OpenModel, Task, WireModel

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
MAX_SERVED_ENTITIES = 15


class ExternalModel(OpenModel):
    provider: str = Field(min_length=1)
    name: str = Field(min_length=1)
    task: Task


class ServedEntityInput(WireModel):
    name: str | None = Field(default=None, max_length=63, pattern=NAME_PATTERN)
    entity_name: str | None = None
    entity_version: str | None = None
    external_model: ExternalModel | None = None
    workload_size: str | None = None
    workload_type: str | None = None
    scale_to_zero_enabled: bool | None = None
    min_provisioned_concurrency: int | None = Field(default=None, ge=0)
    max_provisioned_concurrency: int | None = Field(default=None, ge=0)
    min_provisioned_throughput: int | None = Field(default=None, ge=0)
    max_provisioned_throughput: int | None = Field(default=None, ge=0)
    provisioned_model_units: int | None = Field(default=None, ge=0)
    burst_scaling_enabled: bool | None = None
    environment_vars: dict[str, str] | None = None
    instance_profile_arn: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ServedEntityInput:
        if self.external_model is None and not self.entity_name:
            raise ValueError("a served entity needs either 'external_model' or 'entity_name'")
        if self.external_model is not None and self.entity_name:
            raise ValueError("a served entity takes 'external_model' or 'entity_name', not both")
        return self

    def default_name(self) -> str:
        """Databricks' default: the external model's name with '.' and ':' as '-', else name-version."""
        if self.name:
            return self.name
        if self.external_model is not None:
            return self.external_model.name.replace(".", "-").replace(":", "-").replace("/", "-")
        base = (self.entity_name or "").replace(".", "-")
        return f"{base}-{self.entity_version}" if self.entity_version else base


class ServedModelInput(WireModel):
    """Deprecated `served_models` form; converted to a served entity."""

    name: str | None = Field(default=None, max_length=63, pattern=NAME_PATTERN)
    model_name: str
    model_version: str
    workload_size: str | None = None
    workload_type: str | None = None
    scale_to_zero_enabled: bool | None = None
    environment_vars: dict[str, str] | None = None

    def as_entity(self) -> ServedEntityInput:
        return ServedEntityInput(
            name=self.name,
            entity_name=self.model_name,
            entity_version=self.model_version,
            workload_size=self.workload_size,
            workload_type=self.workload_type,
            scale_to_zero_enabled=self.scale_to_zero_enabled,
            environment_vars=self.environment_vars,
        )


class Route(WireModel):
    served_entity_name: str | None = None
    served_model_name: str | None = None
    traffic_percentage: int = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _named(self) -> Route:
        if not (self.served_entity_name or self.served_model_name):
            raise ValueError("a traffic route needs 'served_entity_name' (or 'served_model_name')")
        return self

    @property
    def target(self) -> str:
        return self.served_entity_name or self.served_model_name or ""


class TrafficConfig(WireModel):
    routes: list[Route] = Field(default_factory=list)


class AutoCaptureConfig(OpenModel):
    catalog_name: str | None = None
    schema_name: str | None = None
    table_name_prefix: str | None = None
    enabled: bool | None = None


class EndpointCoreConfigInput(WireModel):
    # The SDK's create() repeats the endpoint name inside config; accepted and ignored.
    name: str | None = None
    served_entities: list[ServedEntityInput] | None = None
    served_models: list[ServedModelInput] | None = None
    traffic_config: TrafficConfig | None = None
    auto_capture_config: AutoCaptureConfig | None = None

    def entities(self) -> list[ServedEntityInput]:
        if self.served_entities and self.served_models:
            raise ValueError("give 'served_entities' or the deprecated 'served_models', not both")
        if self.served_entities is not None:
            return list(self.served_entities)
        return [m.as_entity() for m in self.served_models or []]


class Tag(WireModel):
    key: str = Field(min_length=1, max_length=255)
    value: str | None = Field(default=None, max_length=255)


class RateLimit(WireModel):
    calls: int | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0)
    key: Literal["user", "user_group", "service_principal", "endpoint"] | None = None
    principal: str | None = None
    renewal_period: Literal["minute"]

    @model_validator(mode="after")
    def _has_limit(self) -> RateLimit:
        if self.calls is None and self.tokens is None:
            raise ValueError("a rate limit needs 'calls' and/or 'tokens'")
        if self.principal and self.key in (None, "endpoint"):
            raise ValueError("'principal' applies only to keys user, user_group and service_principal")
        return self


class PiiConfig(WireModel):
    behavior: Literal["BLOCK", "MASK", "NONE"]


class GuardrailParameters(WireModel):
    safety: bool | None = None
    pii: PiiConfig | None = None
    invalid_keywords: list[str] | None = None
    valid_topics: list[str] | None = None


class Guardrails(WireModel):
    input: GuardrailParameters | None = None
    output: GuardrailParameters | None = None


class UsageTrackingConfig(WireModel):
    enabled: bool | None = None


class InferenceTableConfig(WireModel):
    catalog_name: str | None = Field(default=None, pattern=NAME_PATTERN)
    schema_name: str | None = Field(default=None, pattern=NAME_PATTERN)
    table_name_prefix: str | None = Field(default=None, pattern=NAME_PATTERN)
    enabled: bool | None = None
    # modelgate: fraction of requests logged, 0 < f <= 1 (Databricks' telemetry config has the same knob).
    sampling_fraction: float | None = Field(default=None, gt=0.0, le=1.0)


class FallbackConfig(WireModel):
    enabled: bool


class AiGatewayConfig(WireModel):
    usage_tracking_config: UsageTrackingConfig | None = None
    inference_table_config: InferenceTableConfig | None = None
    rate_limits: list[RateLimit] | None = Field(default=None, max_length=20)
    guardrails: Guardrails | None = None
    fallback_config: FallbackConfig | None = None

    @model_validator(mode="after")
    def _group_limits(self) -> AiGatewayConfig:
        groups = [r for r in self.rate_limits or [] if r.key == "user_group"]
        if len(groups) > 5:
            raise ValueError("at most 5 rate limits with key 'user_group' are allowed")
        return self


class EmailNotifications(OpenModel):
    on_update_failure: list[str] | None = None
    on_update_success: list[str] | None = None


class CreateEndpointRequest(WireModel):
    name: str = Field(min_length=1, max_length=63, pattern=NAME_PATTERN)
    config: EndpointCoreConfigInput | None = None
    ai_gateway: AiGatewayConfig | None = None
    tags: list[Tag] | None = None
    description: str | None = Field(default=None, max_length=1024)
    route_optimized: bool | None = None
    budget_policy_id: str | None = None
    email_notifications: EmailNotifications | None = None
    # Deprecated endpoint-level rate limits; folded into ai_gateway.rate_limits.
    rate_limits: list[RateLimit] | None = None
    telemetry_config: dict[str, Any] | None = None
    uc_system_metrics_export_state: str | None = None
    usage_policy_id: str | None = None


class PatchTagsRequest(WireModel):
    add_tags: list[Tag] | None = None
    delete_tags: list[str] | None = None


class PutRateLimitsRequest(WireModel):
    rate_limits: list[RateLimit] = Field(default_factory=list)


class AccessControlRequest(WireModel):
    user_name: str | None = None
    group_name: str | None = None
    service_principal_name: str | None = None
    permission_level: Literal["CAN_MANAGE", "CAN_QUERY", "CAN_VIEW"]

    @model_validator(mode="after")
    def _one_principal(self) -> AccessControlRequest:
        named = [x for x in (self.user_name, self.group_name, self.service_principal_name) if x]
        if len(named) != 1:
            raise ValueError(
                "each access control entry names exactly one of user_name, group_name, service_principal_name"
            )
        return self


class PermissionsRequest(WireModel):
    access_control_list: list[AccessControlRequest] = Field(default_factory=list)
