import { describe, expect, it } from "vitest";
import { buildRequest, fieldForPath } from "./request.js";
import { DEFAULT_STATE, fromSearch, presetFigures, toSearch, type FormState } from "./state.js";

const state = (patch: Partial<FormState>): FormState => ({ ...DEFAULT_STATE, custom: { ...DEFAULT_STATE.custom }, ...patch });

describe("the form's state in the URL", () => {
  it("writes nothing for the defaults and reads them back", () => {
    expect(toSearch(DEFAULT_STATE)).toBe("");
    expect(fromSearch("")).toEqual(DEFAULT_STATE);
  });

  it("round-trips every field, as typed", () => {
    const s = state({
      model: "yi-34b-200k",
      context: "192K",
      query: "512",
      hosts: "6",
      hardware: "h200-nvlink",
      strategy: "ring-zigzag",
      anchor: "2048",
      passing: "1K",
      balanced: true,
    });
    const search = toSearch(s);
    expect(new URLSearchParams(search).get("context")).toBe("192K");
    expect(fromSearch(search)).toEqual(s);
    expect(fromSearch(`?${search}`)).toEqual(s);
  });

  it("round-trips a pasted config.json and custom hardware figures", () => {
    const config = JSON.stringify({ model_type: "llama", num_hidden_layers: 16, note: "a & b = c?" }, null, 2);
    const s = state({ model: "custom", config, hardware: "custom", custom: { ...presetFigures("a100-ib"), linkGBs: "12.5" } });
    const back = fromSearch(toSearch(s));
    expect(back).toEqual(s);
    expect(back.config).toBe(config);
  });

  it("keeps text the form cannot read, so the error shows again when the link is opened", () => {
    const s = state({ context: "abc", hosts: "0", strategy: "nonsense" });
    expect(fromSearch(toSearch(s))).toEqual(s);
  });

  it("drops a config for a preset model and custom figures for a preset device", () => {
    const s = state({ config: "{}", custom: { ...DEFAULT_STATE.custom, memoryGiB: "1" } });
    expect(toSearch(s)).toBe("");
    expect(fromSearch("config=%7B%7D&memory=1")).toEqual(DEFAULT_STATE);
  });
});

describe("from the form to the planner", () => {
  it("builds the request from the text", () => {
    const built = buildRequest(state({ context: "1M", hosts: "16", anchor: "8K" }));
    expect(built.ok).toBe(true);
    if (!built.ok) return;
    expect(built.request).toMatchObject({ model: "llama-3.1-8b", contextTokens: 1048576, queryTokens: 128, hosts: 16, anchorTokens: 8192, strategy: "apb", balanced: true });
    expect(built.request).not.toHaveProperty("passingTokens");
    expect(built.contextLimit).toBe(131072);
  });

  it("asks for balanced blocks only where there are blocks to balance, and keeps the even split in the link", () => {
    const ring = buildRequest(state({ strategy: "ring" }));
    expect(ring.ok && ring.request).not.toHaveProperty("balanced");
    const even = buildRequest(state({ strategy: "star", balanced: false }));
    expect(even.ok && even.request).toMatchObject({ strategy: "star", balanced: false });
    expect(toSearch(state({ balanced: false }))).toBe("balanced=0");
    expect(fromSearch("balanced=0").balanced).toBe(false);
    expect(fromSearch("").balanced).toBe(true);
  });

  it("names every field it cannot read", () => {
    const built = buildRequest(state({ context: "abc", hosts: "x", hardware: "custom", custom: { ...DEFAULT_STATE.custom, hbmGBs: "" } }));
    expect(built.ok).toBe(false);
    if (built.ok) return;
    expect(built.errors.map((e) => e.field)).toEqual(["context", "hosts", "hw-hbmGBs"]);
  });

  it("sends the attention blocks' figures when given and leaves them out when empty", () => {
    const hopper = buildRequest(state({ hardware: "custom", custom: presetFigures("h200-nvlink") }));
    expect(hopper.ok && hopper.request.hardware).toMatchObject({ multiprocessors: 132, attentionBlockUs: 7 });
    // The A100 preset times attention by FLOPs: its custom copy has the two fields empty.
    const a100 = presetFigures("a100-ib");
    expect([a100.multiprocessors, a100.attentionBlockUs]).toEqual(["", ""]);
    const flops = buildRequest(state({ hardware: "custom", custom: a100 }));
    expect(flops.ok && Object.keys(flops.request.hardware as object)).not.toContain("multiprocessors");
    expect(fieldForPath("hardware.attentionBlockUs", state({ hardware: "custom" }))).toBe("hw-attentionBlockUs");
  });

  it("reads a pasted config.json, and names the textarea when it cannot", () => {
    const bad = buildRequest(state({ model: "custom", config: "{not json" }));
    expect(bad.ok === false && bad.errors[0]?.field).toBe("config");
    const good = buildRequest(state({ model: "custom", config: JSON.stringify({ model_type: "qwen2", num_hidden_layers: 2, hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 128, vocab_size: 1000, max_position_embeddings: 32768 }) }));
    expect(good.ok && good.request.model).toMatchObject({ layers: 2, hidden: 64, heads: 4, kvHeads: 2, headDim: 16 });
    expect(good.ok && good.contextLimit).toBe(32768);
  });

  it("maps planner paths to fields", () => {
    const s = state({});
    expect(fieldForPath("contextTokens", s)).toBe("context");
    expect(fieldForPath("hosts", s)).toBe("hosts");
    expect(fieldForPath("maxHosts", s)).toBe("hosts");
    expect(fieldForPath("passingTokens", s)).toBe("passing");
    expect(fieldForPath("model", s)).toBe("model");
    expect(fieldForPath("model.kvHeads", state({ model: "custom" }))).toBe("config");
    expect(fieldForPath("hardware.linkGBs", state({ hardware: "custom" }))).toBe("hw-linkGBs");
    expect(fieldForPath("hardware", s)).toBe("hardware");
    expect(fieldForPath("", s)).toBe("general");
  });
});
