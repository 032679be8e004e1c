// "Show example": a valid request body for each endpoint task.

const EXAMPLES = {
  "llm/v1/chat": {
    messages: [
      { role: "system", content: "You are a helpful assistant." },
      { role: "user", content: "What is a serving endpoint?" },
    ],
    max_tokens: 128,
    temperature: 0.7,
  },
  "llm/v1/completions": { prompt: "A serving endpoint is", max_tokens: 64, temperature: 0.7 },
  "llm/v1/embeddings": { input: ["What is a serving endpoint?"] },
};

export function exampleFor(task) {
  return structuredClone(EXAMPLES[task] || EXAMPLES["llm/v1/chat"]);
}
