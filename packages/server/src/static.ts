// The web page (apps/web's build) at / and its assets, with no API key: it is a static page,
// and everything it does with a coordinator it does from the browser with the coordinator's token.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";
import { errorBody } from "./errors.js";

/** How to get a page when there is none. */
export const BUILD_HINT = "build it with `npm run build -w @apb/web` (it writes apps/web/dist, which `apb serve` finds; a bundle carries it as web/)";

/**
 * Serves `webRoot` at / when it holds an index.html; otherwise GET / answers 404 saying how to
 * build the page. @fastify/send refuses paths that leave the root and names content types
 * (application/wasm for the planner's module).
 */
export async function registerWebPage(app: FastifyInstance, webRoot: string | null): Promise<void> {
  const root = webRoot === null ? null : resolve(webRoot);
  if (root === null || !existsSync(join(root, "index.html"))) {
    const why = root === null ? "this server was started without a web page" : `the web page is not built (no index.html in ${root})`;
    app.get("/", (_request, reply) => reply.code(404).send(errorBody({ code: "UNKNOWN_ROUTE", path: "", message: `${why}: ${BUILD_HINT}` })));
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: "/",
    index: ["index.html"],
    dotfiles: "deny",
    // Asset names are not content-hashed: revalidate rather than cache stale code.
    cacheControl: true,
    maxAge: 0,
    // No directory listings and no redirects outside the page's own files.
    list: false,
    redirect: false,
  });
}
