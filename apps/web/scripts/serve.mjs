// A tiny static server for the built page (apps/web/dist) on 127.0.0.1:
//   node apps/web/scripts/serve.mjs [--port 5173]
import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
  ".map": "application/json",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

export const DIST = fileURLToPath(new URL("../dist/", import.meta.url));

/** Serves `root` (read-only, no listings; / is index.html) and resolves once listening. */
export function serve({ root = DIST, port = 5173, host = "127.0.0.1" } = {}) {
  const base = normalize(root.endsWith(sep) ? root : root + sep);
  const server = createServer((req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (path.endsWith("/")) path += "index.html";
    const file = normalize(join(base, path));
    let isFile = false;
    try {
      isFile = file.startsWith(base) && statSync(file).isFile();
    } catch {}
    if (!isFile || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-cache" });
    if (req.method === "HEAD") res.end();
    else createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const address = server.address();
      const url = `http://${host}:${address.port}/`;
      resolve({ url, close: () => new Promise((done) => server.close(() => done())) });
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1])) {
  const at = process.argv.indexOf("--port");
  const port = at > 0 ? Number(process.argv[at + 1]) : 5173;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error("--port must be a whole number between 0 and 65535");
    process.exit(2);
  }
  try {
    statSync(join(DIST, "index.html"));
  } catch {
    console.error("apps/web/dist/index.html is missing: build it first (npm run web builds and serves)");
    process.exit(1);
  }
  const { url } = await serve({ port });
  console.log(`apb planner page: ${url}  (Ctrl-C stops)`);
}
