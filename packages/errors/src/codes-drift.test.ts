// The list in codes.ts is the only list: every code used anywhere in the repository is in it,
// every code in it is used somewhere, and docs/ERRORS.md is what it writes.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ERRORS, ERROR_CODES, isErrorCode } from "./codes.js";
import { errorsMarkdown, WRITE_DOCS_COMMAND } from "./docs.js";
import { ROOT, rustCodes, tsCodes, tsList, type Use } from "./sources.test-helper.js";

const rust = rustCodes();
const lists = {
  protocol: tsList("packages/protocol/src/errors.ts", "CONTROL_ERROR_CODES"),
  planner: tsList("packages/planner/src/errors.ts", "PLANNER_ERROR_CODES"),
  runtime: tsList("packages/runtime/src/errors.ts", "RUNTIME_ERROR_CODES"),
};
const ts = tsCodes();

/** "CODE (file, how)" for each use, one per line, for failure messages that name the file. */
const where = (uses: Use[]): string[] => [...new Set(uses.map((u) => `${u.code} (${u.file}, ${u.how})`))];
const unlisted = (uses: Use[]): string[] => where(uses.filter((u) => !isErrorCode(u.code)));

describe("every code used is in the list", () => {
  it("the Rust crates' code constants and the codes they raise or compare", () => {
    expect(rust.uses.length).toBeGreaterThan(20); // the scan found the crates
    expect(unlisted(rust.uses), "add these to packages/errors/src/codes.ts, or use a listed code").toEqual([]);
  });

  it("the protocol's CONTROL_ERROR_CODES", () => {
    expect(lists.protocol.length).toBeGreaterThan(10);
    expect(unlisted(lists.protocol)).toEqual([]);
  });

  it("the protocol's permanent refusals, which are what the user must fix (exit status 2)", () => {
    const permanent = tsList("packages/protocol/src/errors.ts", "PERMANENT_ERROR_CODES");
    expect(permanent.length).toBeGreaterThan(0);
    expect(where(permanent.filter((u) => !isErrorCode(u.code) || ERRORS[u.code].exitStatus !== 2))).toEqual([]);
  });

  it("the planner's and the runtime's lists", () => {
    expect(lists.planner.map((u) => u.code)).toContain("INFEASIBLE");
    expect(lists.runtime.map((u) => u.code)).toContain("MODEL_FILE");
    expect(unlisted([...lists.planner, ...lists.runtime])).toEqual([]);
  });

  it("the codes the TypeScript packages and apps write or compare", () => {
    expect(ts.length).toBeGreaterThan(50);
    expect(unlisted(ts), "add these to packages/errors/src/codes.ts, or use a listed code").toEqual([]);
  });
});

describe("the engine's codes reach TypeScript", () => {
  it("the planner's TypeScript list is the Rust planner's `code` module", () => {
    const rustPlanner = rust.uses.filter((u) => u.file === "crates/apb-plan/src/error.rs" && u.how === "const").map((u) => u.code);
    expect(lists.planner.map((u) => u.code).sort()).toEqual(rustPlanner.sort());
  });


  it("every code a crate defines or raises is a runtime code (the addon passes them to @apb/runtime)", () => {
    const runtime = new Set(lists.runtime.map((u) => u.code));
    const crates = rust.uses.filter((u) => /^crates\/[^/]+\/src\//.test(u.file) && u.how !== "compared");
    expect(where(crates.filter((u) => !runtime.has(u.code))), "add these to RUNTIME_ERROR_CODES in packages/runtime/src/errors.ts").toEqual([]);
  });
});

describe("every listed code is used", () => {
  it("by a crate, the protocol, the planner, the runtime or the TypeScript sources", () => {
    const used = new Set([...rust.uses, ...lists.protocol, ...lists.planner, ...lists.runtime, ...ts].map((u) => u.code));
    expect(ERROR_CODES.filter((code) => !used.has(code)), "remove these from packages/errors/src/codes.ts, or raise them").toEqual([]);
  });
});

describe("the Rust crates name each code once", () => {
  it("as a constant of a `code` module, named as its value", () => {
    expect(where(rust.strayConsts), "move these into the crate's `code` module (or re-export it)").toEqual([]);
    expect(where(rust.misnamed)).toEqual([]);
  });

  it("and build errors from those constants, never from a string literal", () => {
    const literals = rust.bareLiterals.filter((u) => isErrorCode(u.code));
    expect(where(literals), "use code::NAME instead of \"NAME\" (outside tests)").toEqual([]);
  });
});

describe("docs/ERRORS.md", () => {
  it("is exactly what the list writes", () => {
    const current = readFileSync(join(ROOT, "docs/ERRORS.md"), "utf8");
    expect(current === errorsMarkdown(), `docs/ERRORS.md is stale: run \`${WRITE_DOCS_COMMAND}\``).toBe(true);
  });
});
