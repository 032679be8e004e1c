"""Chat request wire model (reference §3.1-§3.2), in the order the Databricks reference lists the fields.

Unknown top-level fields are rejected (Databricks answers `json: unknown field`); nested objects that
providers extend (content parts, tool definitions) keep unknown keys so they pass through.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from modelgate.protocol.common import GatewayFields, OpenModel, StreamOptions

MAX_TOOLS = 32

Role = Literal["system", "developer", "user", "assistant", "tool"]
SYSTEM_ROLES = frozenset({"system", "developer"})


class TextPart(OpenModel):
    type: Literal["text"]
    text: str


class ImageURL(OpenModel):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(OpenModel):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(OpenModel):
    data: str
    format: Literal["wav", "mp3"]


class AudioPart(OpenModel):
    type: Literal["input_audio"]
    input_audio: InputAudio


class ReasoningSummary(OpenModel):
    type: Literal["summary_text", "summary_encrypted_text"]
    text: str | None = None
    signature: str | None = None
    data: str | None = None


class ReasoningPart(OpenModel):
    """A reasoning block sent back in assistant history; round-tripped to the provider unmodified."""

    type: Literal["reasoning"]
    summary: list[ReasoningSummary]


ContentPart = Annotated[TextPart | ImagePart | AudioPart | ReasoningPart, Field(discriminator="type")]


class FunctionCall(OpenModel):
    name: str
    arguments: str


class ToolCall(OpenModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(OpenModel):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _check_shape(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a message with role 'tool' needs 'tool_call_id'")
        if self.content is None and not self.tool_calls and self.role != "assistant":
            raise ValueError(f"a message with role {self.role!r} needs 'content'")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages may carry 'tool_calls'")
        return self

    def text(self) -> str:
        """The message's plain text: the string content, or its text parts joined."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


class FunctionDefinition(OpenModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = None
    parameters: dict[str, Any]
    strict: bool | None = None


class Tool(OpenModel):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(OpenModel):
    name: str


class NamedToolChoice(OpenModel):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaFormat(OpenModel):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(OpenModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_present(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type 'json_schema' needs a 'json_schema' object")
        return self


class Thinking(OpenModel):
    type: Literal["enabled", "disabled"]
    budget_tokens: int | None = Field(default=None, ge=1)


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class ChatRequest(GatewayFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    # OpenAI's newer name for max_tokens; folded into max_tokens after validation.
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=5)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    thinking: Thinking | None = None
    reasoning_effort: ReasoningEffort | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None

    @model_validator(mode="after")
    def _check_rules(self) -> ChatRequest:
        for i, msg in enumerate(self.messages):
            if msg.role in SYSTEM_ROLES and i != 0:
                raise ValueError(
                    f"messages[{i}] has role {msg.role!r}: a system message may appear only once, as the first message"
                )
        if self.max_completion_tokens is not None:
            if self.max_tokens is not None and self.max_tokens != self.max_completion_tokens:
                raise ValueError("give either 'max_tokens' or 'max_completion_tokens', not both")
            self.max_tokens = self.max_completion_tokens
            self.max_completion_tokens = None
        if self.tools is not None and len(self.tools) > MAX_TOOLS:
            raise ValueError(f"at most {MAX_TOOLS} tools are allowed, got {len(self.tools)}")
        if isinstance(self.tool_choice, NamedToolChoice):
            names = {t.function.name for t in self.tools or []}
            if self.tool_choice.function.name not in names:
                raise ValueError(
                    f"tool_choice names function {self.tool_choice.function.name!r}, which is not among 'tools'"
                )
        elif self.tool_choice == "required" and not self.tools:
            raise ValueError("tool_choice 'required' needs at least one tool in 'tools'")
        if self.thinking is not None and self.thinking.type == "enabled":
            budget = self.thinking.budget_tokens
            if budget is None:
                raise ValueError("thinking of type 'enabled' needs 'budget_tokens'")
            if self.max_tokens is not None and budget >= self.max_tokens:
                raise ValueError(f"thinking.budget_tokens ({budget}) must be less than max_tokens ({self.max_tokens})")
        if isinstance(self.stop, list) and len(self.stop) > 16:
            raise ValueError("at most 16 stop sequences are allowed")
        return self

    @property
    def wants_usage_chunk(self) -> bool:
        """Streams end with a usage chunk unless the caller said `include_usage: false`."""
        return self.stream_options is None or self.stream_options.include_usage is not False
