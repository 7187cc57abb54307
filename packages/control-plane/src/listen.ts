import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { ControlPlaneError } from "./errors.js";

/**
 * An HTTP server that hands WebSocket upgrades to `onUpgrade` and answers anything else with 426.
 * Ours rather than ws's, so a port in use rejects here as LISTEN instead of surfacing as an event.
 */
export async function listen(host: string, port: number, onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void): Promise<{ http: Server; url: string }> {
  const http = createServer((_req, res) => {
    res.writeHead(426, { "content-type": "text/plain" }).end("apb coordinator: connect with WebSocket\n");
  });
  http.on("upgrade", onUpgrade);
  await new Promise<void>((resolve, reject) => {
    const failed = (error: Error) => reject(new ControlPlaneError({ code: "LISTEN", message: `the coordinator cannot listen on ${host}:${port}: ${error.message}`, path: "port" }));
    http.once("error", failed);
    http.listen(port, host, () => {
      http.off("error", failed);
      resolve();
    });
  });
  const address = http.address() as AddressInfo;
  const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return { http, url: `ws://${shown}:${address.port}` };
}
