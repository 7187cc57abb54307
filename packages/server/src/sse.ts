// Server-sent events as OpenAI streams them: `data: <json>` events, then `data: [DONE]`. An
// error after the stream began is one `data: {"error": ...}` event (the official clients
// raise it), and the stream ends without [DONE].
import type { ServerResponse } from "node:http";
import type { ErrorBody } from "./errors.js";

export class EventStream {
  constructor(private readonly res: ServerResponse) {}

  open(): void {
    this.res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      // Proxies such as nginx buffer responses unless told not to; tokens must flow.
      "x-accel-buffering": "no",
    });
  }

  send(data: object): void {
    if (!this.res.writableEnded) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  done(): void {
    if (this.res.writableEnded) return;
    this.res.write("data: [DONE]\n\n");
    this.res.end();
  }

  fail(body: ErrorBody): void {
    if (this.res.writableEnded) return;
    this.send(body);
    this.res.end();
  }
}
