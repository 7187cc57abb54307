// Reads the error codes the rest of the repository uses, from source text (not from built
// packages: the planner and the runtime depend on this package, and a stale build would hide
// drift). Each finding keeps the file it came from, so a failure can name it.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** A code as some file uses it. */
export interface Use {
  code: string;
  file: string;
  /** How the file uses it: "const", "literal", "list", "compared". */
  how: string;
}

/** What an error code looks like: upper-case words joined by underscores. */
const CODE = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$/;

export function filesUnder(dir: string, ext: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      if (entry.name === "node_modules" || entry.name === "dist" || entry.name === "target") continue;
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(ext)) out.push(path);
    }
  };
  walk(join(ROOT, dir));
  return out.sort();
}

export const rel = (file: string): string => relative(ROOT, file);
const read = (file: string): string => readFileSync(file, "utf8");

/** Rust source with comments blanked (so a code named in a doc comment is not a use). */
function rustCode(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " ")).replace(/\/\/[^\n]*/g, "");
}

/** The body of each block that `opening` starts, e.g. `mod code {` (brace-matched). */
function blocks(text: string, opening: RegExp): string[] {
  const bodies: string[] = [];
  for (const m of text.matchAll(opening)) {
    let depth = 1;
    let i = m.index + m[0].length;
    const start = i;
    for (; i < text.length && depth > 0; i++) {
      if (text[i] === "{") depth++;
      else if (text[i] === "}") depth--;
    }
    bodies.push(text.slice(start, i - 1));
  }
  return bodies;
}

const codeModules = (text: string): string[] => blocks(text, /\bmod\s+code\s*\{/g);
const testModules = (text: string): string[] => blocks(text, /#\[cfg\(test\)\]\s*mod\s+\w+\s*\{/g);

export interface RustCodes {
  uses: Use[];
  /** `const X: &str = "X"` outside a `code` module: a second home for a code. */
  strayConsts: Use[];
  /**
   * Code-shaped string literals in non-test source (src/ outside `code` and test modules).
   * Most are env names and the like; the test picks out those that are listed codes, which
   * should have been `code::` constants.
   */
  bareLiterals: Use[];
  /** `pub const X: &str = "Y"` with X != Y. */
  misnamed: Use[];
}

/**
 * Codes in the Rust crates: the constants of each `code` module; literals handed to
 * `EngineError::new` / `PlanError::new` or written as `code: "..."`; literals a line compares
 * with an error's `.code` (tests do).
 */
export function rustCodes(): RustCodes {
  const result: RustCodes = { uses: [], strayConsts: [], bareLiterals: [], misnamed: [] };
  const files = [...filesUnder("crates", ".rs")].filter((f) => /\/crates\/[^/]+\/(src|tests|examples)\//.test(f));
  for (const path of files) {
    const file = rel(path);
    const text = rustCode(read(path));
    const inSrc = /^crates\/[^/]+\/src\//.test(file);
    const modules = codeModules(text);
    for (const body of modules) {
      for (const m of body.matchAll(/\bconst\s+([A-Z][A-Z0-9_]*)\s*:\s*&(?:'static\s+)?str\s*=\s*"([^"]*)"/g)) {
        result.uses.push({ code: m[2]!, file, how: "const" });
        if (m[1] !== m[2]) result.misnamed.push({ code: `${m[1]} = "${m[2]}"`, file, how: "const" });
      }
    }
    let outside = text;
    for (const body of modules) outside = outside.replace(body, "");
    for (const m of outside.matchAll(/\bconst\s+([A-Z][A-Z0-9_]*)\s*:\s*&(?:'static\s+)?str\s*=\s*"([^"]*)"/g)) {
      if (m[1] === m[2]) result.strayConsts.push({ code: m[2]!, file, how: "const" });
    }
    const built = [
      ...text.matchAll(/\b(?:EngineError|PlanError)::new\(\s*"([^"]*)"/g),
      ...text.matchAll(/\bcode\s*:\s*"([^"]*)"/g),
    ];
    for (const m of built) result.uses.push({ code: m[1]!, file, how: "literal" });
    if (inSrc) {
      let plain = outside;
      for (const body of testModules(plain)) plain = plain.replace(body, "");
      for (const m of plain.matchAll(/"([^"\\]*)"/g)) if (CODE.test(m[1]!)) result.bareLiterals.push({ code: m[1]!, file, how: "literal" });
    }
    const compared = [
      ...text.matchAll(/\.code\s*(?:==|!=|,)\s*"([^"]*)"/g), // e.code == "X", assert_eq!(e.code, "X")
      ...text.matchAll(/\(\s*[\w.]+\.code\s*,[^()]*(?:\([^()]*\)[^()]*)*\)\s*,\s*\(\s*"([^"]*)"/g), // assert_eq!((e.code, ..), ("X", ..))
    ];
    for (const m of compared) if (CODE.test(m[1]!)) result.uses.push({ code: m[1]!, file, how: "compared" });
  }
  return result;
}

/** The string items of `export const NAME = [ ... ]` in a TypeScript file. */
export function tsList(file: string, name: string): Use[] {
  const text = read(join(ROOT, file));
  const m = new RegExp(`export const ${name}\\b[^=]*=\\s*\\[([\\s\\S]*?)\\]`).exec(text);
  if (!m) throw new Error(`${file} has no \`export const ${name} = [...]\``);
  const items = m[1]!.replace(/\/\/[^\n]*/g, "");
  return [...items.matchAll(/"([^"]*)"/g)].map((i) => ({ code: i[1]!, file, how: "list" }));
}

/** Codes other libraries raise that apb only inspects: Node's errno names, its ERR_ codes, ws's, fastify's. */
const FOREIGN = /^(E[A-Z]+|ERR_[A-Z0-9_]+|WS_ERR_[A-Z0-9_]+|FST_ERR_[A-Z0-9_]+)$/;

/**
 * Codes the TypeScript packages and apps (their sources, not their tests) write or compare:
 * `code: "X"`, `code = cond ? a : "X"`, `code === "X"`.
 */
export function tsCodes(): Use[] {
  const files = [...filesUnder("packages", ".ts"), ...filesUnder("apps", ".ts")].filter(
    (f) => /\/src\//.test(f) && !f.includes("/packages/errors/") && !/\.(test|test-helper|d)\.ts$/.test(f),
  );
  const uses: Use[] = [];
  for (const path of files) {
    const file = rel(path);
    const text = read(path).replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "");
    for (const m of text.matchAll(/\bcode\s*(?::|=|===|!==|==|!=)\s*([^,;}\n]*)/g)) {
      for (const literal of m[1]!.matchAll(/"([^"]*)"/g)) {
        const code = literal[1]!;
        if (CODE.test(code) && !FOREIGN.test(code)) uses.push({ code, file, how: "compared" });
      }
    }
  }
  return uses;
}
