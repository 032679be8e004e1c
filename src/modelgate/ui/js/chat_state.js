// Builds one assistant answer from a chat response or from its stream chunks (pure; no DOM).
//
// Content may be a string or a list of parts; parts of type "reasoning" carry
// summary[].text (Databricks reasoning blocks), "text" parts carry the answer.

export function newAnswer() {
  return { text: "", reasoning: "", toolCalls: [], usage: null, finishReason: null, error: null };
}

function addContent(answer, content) {
  if (typeof content === "string") {
    answer.text += content;
    return;
  }
  if (!Array.isArray(content)) return;
  for (const part of content) {
    if (!part || typeof part !== "object") continue;
    if (part.type === "text" && typeof part.text === "string") answer.text += part.text;
    if (part.type === "reasoning") {
      for (const item of part.summary || []) {
        if (item.type === "summary_text" && typeof item.text === "string") answer.reasoning += item.text;
        if (item.type === "summary_encrypted_text") answer.reasoning += "[redacted reasoning]";
      }
    }
  }
}

function addToolCalls(answer, calls) {
  for (const call of calls || []) {
    const index = typeof call.index === "number" ? call.index : answer.toolCalls.length;
    const slot = (answer.toolCalls[index] ||= { id: "", name: "", arguments: "" });
    if (call.id) slot.id = call.id;
    if (call.function?.name) slot.name += call.function.name;
    if (call.function?.arguments) slot.arguments += call.function.arguments;
  }
}

/** Apply one streamed `chat.completion.chunk` (or an in-stream error event). */
export function applyChunk(answer, chunk) {
  if (chunk.error_code || chunk.error) {
    answer.error = `${chunk.error_code || chunk.error?.code || "ERROR"}: ${chunk.message || chunk.error?.message || ""}`;
    return answer;
  }
  const choice = (chunk.choices || []).find((c) => (c.index ?? 0) === 0);
  if (choice) {
    const delta = choice.delta || {};
    addContent(answer, delta.content);
    addToolCalls(answer, delta.tool_calls);
    if (choice.finish_reason) answer.finishReason = choice.finish_reason;
  }
  if (chunk.usage) answer.usage = chunk.usage;
  return answer;
}

/** Fill an answer from a whole (non-streamed) chat completion. */
export function fromCompletion(body) {
  const answer = newAnswer();
  const choice = (body.choices || [])[0] || {};
  const message = choice.message || {};
  addContent(answer, message.content);
  addToolCalls(
    answer,
    (message.tool_calls || []).map((c, index) => ({ ...c, index })),
  );
  answer.finishReason = choice.finish_reason || null;
  answer.usage = body.usage || null;
  return answer;
}

/** The assistant message to put back into the conversation history. */
export function historyMessage(answer) {
  const message = { role: "assistant", content: answer.text };
  if (answer.toolCalls.length) {
    message.tool_calls = answer.toolCalls.map((c) => ({
      id: c.id,
      type: "function",
      function: { name: c.name, arguments: c.arguments },
    }));
  }
  return message;
}
