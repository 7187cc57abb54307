import { describe, expect, it } from "vitest";
import { Admission } from "./admission.js";
import { ServerError } from "./errors.js";

function busy(a: Admission): ServerError & { retryAfterS: number } {
  try {
    a.enter();
  } catch (e) {
    if (e instanceof ServerError) return e as ServerError & { retryAfterS: number };
    throw e;
  }
  throw new Error("a place was free");
}

describe("the admission of requests", () => {
  it("gives places to the running request and maxQueue waiting ones, then refuses with BUSY", () => {
    const a = new Admission(2);
    const places = [a.enter(), a.enter(), a.enter()];
    expect(a.holding).toBe(3);
    expect(a.waiting).toBe(2);
    expect(busy(a)).toMatchObject({ code: "BUSY", retryAfterS: 1 });
    places[0]!.release(null);
    expect(a.waiting).toBe(1);
    expect(() => a.enter()).not.toThrow();
  });

  it("gives a place back once however often it is released", () => {
    const a = new Admission(0);
    const place = a.enter();
    place.release(null);
    place.release(null);
    expect(a.holding).toBe(0);
    a.enter();
    expect(busy(a).code).toBe("BUSY");
  });

  it("estimates Retry-After from the mean job time, in whole seconds from 1 to 3600", () => {
    const a = new Admission(0);
    expect(a.retryAfterS()).toBe(1);
    a.enter().release(4200);
    expect(a.retryAfterS()).toBe(5);
    // A moving average: one short job moves it a fifth of the way.
    a.enter().release(200);
    expect(a.retryAfterS()).toBe(4);
    a.enter().release(100_000_000);
    expect(a.retryAfterS()).toBe(3600);
    a.enter();
    expect(busy(a).message).toContain("retry in about 3600 s");
  });
});
