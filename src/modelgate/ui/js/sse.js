// Server-sent events over fetch: a pure line parser plus a reader for a Response body.

/** Feed text in any chunking; get back each event's joined `data:` payload once its blank line arrives. */
export class SSEParser {
  constructor() {
    this.buffer = "";
    this.data = [];
  }

  push(text) {
    this.buffer += text;
    const events = [];
    let newline;
    while ((newline = this.buffer.search(/\r?\n/)) >= 0) {
      const line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + (this.buffer[newline] === "\r" ? 2 : 1));
      if (line === "") {
        if (this.data.length) events.push(this.data.join("\n"));
        this.data = [];
      } else if (line.startsWith("data:")) {
        this.data.push(line.slice(5).replace(/^ /, ""));
      }
      // Comments (":") and other fields (event:, id:, retry:) carry nothing the UI needs.
    }
    return events;
  }

  /** What is left when the stream closes without a final blank line. */
  flush() {
    const rest = this.push("\n\n");
    this.buffer = "";
    return rest;
  }
}

/** Yields parsed JSON objects from `data:` lines until `[DONE]` or the end of the body. */
export async function* sseJson(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      const events = done ? parser.flush() : parser.push(decoder.decode(value, { stream: true }));
      for (const data of events) {
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
      if (done) return;
    }
  } finally {
    reader.releaseLock();
  }
}
