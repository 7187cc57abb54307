#!/usr/bin/env node
// Writes docs/ERRORS.md from the built list (run through `npm run docs -w @apb/errors`,
// which builds first).
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { errorsMarkdown } from "../dist/index.js";

const target = fileURLToPath(new URL("../../../docs/ERRORS.md", import.meta.url));
writeFileSync(target, errorsMarkdown());
console.log(`wrote ${target}`);
