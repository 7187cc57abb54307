import type { HostPlan } from "@apb/planner";
import { describe, expect, it } from "vitest";
import { drawnHosts, eachHostRow } from "./host-rows.js";

describe("drawnHosts", () => {
  it("draws every host up to 64", () => {
    expect(drawnHosts(3)).toEqual([0, 1, 2]);
    expect(drawnHosts(64)).toHaveLength(64);
  });

  it("draws the first and last 32 of a larger group, an elision row between", () => {
    const rows = drawnHosts(200);
    expect(rows).toHaveLength(65);
    expect(rows.slice(30, 35)).toEqual([30, 31, "gap", 168, 169]);
    expect(rows.at(-1)).toBe(199);
  });
});

describe("eachHostRow", () => {
  it("gives each drawn host its row's top and index, rows rowH tall and gap apart from top", () => {
    const hostPlans = [{ host: 0 }, { host: 1 }, { host: 2 }] as unknown as HostPlan[];
    const seen: [number, number, number][] = [];
    const svg = { append: () => expect.fail("no elision row for 3 hosts") } as unknown as SVGSVGElement;
    eachHostRow(svg, hostPlans, drawnHosts(3), { top: 20, rowH: 10, gap: 5, x0: 64 }, (host, y, i) => seen.push([host.host, y, i]));
    expect(seen).toEqual([[0, 20, 0], [1, 35, 1], [2, 50, 2]]);
  });
});
