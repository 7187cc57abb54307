import { ControlPlaneError } from "./errors.js";

/** A URL the agent and the client can open (ws throws on others, far from the caller). */
export function checkUrl(url: string): void {
  let protocol = "";
  try {
    protocol = new URL(url).protocol;
  } catch {
    protocol = "";
  }
  if (protocol !== "ws:" && protocol !== "wss:") {
    throw new ControlPlaneError({ code: "INVALID_OPTIONS", message: `the coordinator's URL must be ws://host:port or wss://host:port, found ${JSON.stringify(url)}`, path: "url" });
  }
}
