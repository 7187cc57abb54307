// A command's words for the library's fields: its own flags, and a field it has no flag for
// called a field, never another command's flag.
import { describe, expect, it } from "vitest";
import { inWords } from "./words.js";

const RUN = { hosts: "--hosts", anchorTokens: "--anchor", queryTokens: "the query's tokens" };

describe("inWords", () => {
  it("names the field a message starts with, and every library field in it, as the command does", () => {
    expect(inWords("queryTokens (53) plus prefixTokens (8) must fit in the anchor", "queryTokens", RUN)).toEqual({
      message: "the query's tokens (53) plus the request's field prefixTokens (8) must fit in the anchor",
      path: "queryTokens",
    });
    expect(inWords("hosts Too big", "hosts", RUN)).toEqual({ message: "--hosts Too big", path: "--hosts" });
  });

  it("calls a field it has no words for a field", () => {
    expect(inWords("maxHosts must be at least 1", "maxHosts", RUN).message).toBe("the request's field maxHosts must be at least 1");
  });

  it("leaves a message about a flag, and words that only look like fields, as they are", () => {
    expect(inWords("--hosts must be a whole number, got 'x'", "--hosts", RUN)).toEqual({ message: "--hosts must be a whole number, got 'x'", path: "--hosts" });
    expect(inWords("cannot read /models/myModel/hostsFile", "", RUN).message).toBe("cannot read /models/myModel/hostsFile");
  });
});
