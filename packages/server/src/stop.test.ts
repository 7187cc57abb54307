import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatBody, closeServers, completionBody, idsOf, sseData, startServer, tinyModel, until, type TinyModel } from "./server.test-helper.js";

let tiny: TinyModel;
beforeAll(async () => (tiny = await tinyModel()));
afterAll(async () => {
  await closeServers();
  tiny.remove();
});

describe("a request's stop strings", () => {
  it("end the answer before the first one (not included), with finish_reason stop, while the job still runs", async () => {
    const s = await startServer(tiny.dir, { tokens: idsOf(tiny.dir, " Stone. END of it. More") });
    s.group.next({ hold: true });
    const res = await s.post("/v1/chat/completions", chatBody({ stop: ["END", "never"] }));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: { message: { content: string }; finish_reason: string }[] };
    expect(body.choices[0]).toMatchObject({ message: { content: " Stone. " }, finish_reason: "stop" });
    // The answer came back while the group still holds the job.
    const job = s.group.jobs[0]!;
    expect(job.ended).toBeNull();
    expect(job.aborted).toBe(false);
    job.release();
    await until("the job ends", () => job.ended !== null);
    expect(job.ended).toBe("resolved");
  });

  it("end a streamed answer too: no chunk shows any of the stop string", async () => {
    const s = await startServer(tiny.dir, { tokens: idsOf(tiny.dir, " Stone.\n\nNext line") });
    s.group.next({ hold: true });
    const res = await s.post("/v1/completions", completionBody({ stream: true, stop: "\n\n" }));
    const data = sseData(await res.text());
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as { choices: { text: string; finish_reason: string | null }[] });
    expect(chunks.map((c) => c.choices[0]!.text).join("")).toBe(" Stone.");
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("stop");
    s.group.jobs[0]!.release();
    await until("the job ends", () => s.group.jobs[0]!.ended !== null);
  });

  it("that never appear leave the answer whole", async () => {
    const s = await startServer(tiny.dir, { tokens: idsOf(tiny.dir, " Stone.") });
    const body = (await (await s.post("/v1/completions", completionBody({ stop: "zzz" }))).json()) as { choices: { text: string; finish_reason: string }[] };
    expect(body.choices[0]).toMatchObject({ text: " Stone.", finish_reason: "length" });
  });

  it("leave the answer as it was when the job fails after it ended", async () => {
    const s = await startServer(tiny.dir, { tokens: idsOf(tiny.dir, " Stone. END") });
    s.group.next({ hold: true, fail: { code: "HOST_LOST", message: "host 0 (pid 7 on node0) stopped answering" } });
    const body = (await (await s.post("/v1/completions", completionBody({ stop: "END" }))).json()) as { choices: { text: string; finish_reason: string }[] };
    expect(body.choices[0]).toMatchObject({ text: " Stone. ", finish_reason: "stop" });
    s.group.jobs[0]!.release();
    await until("the job ends", () => s.group.jobs[0]!.ended === "rejected");
    // The place the job held is free again.
    expect((await s.post("/v1/completions", completionBody())).status).toBe(200);
  });
});
