// Small helpers for building SVG with the DOM.
const NS = "http://www.w3.org/2000/svg";

type Attrs = Record<string, string | number | undefined>;

export function svgEl<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Node | null)[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) el.setAttribute(k, String(v));
  for (const child of children) if (child) el.append(child);
  return el;
}

export function svgText(x: number, y: number, text: string, attrs: Attrs = {}): SVGTextElement {
  const el = svgEl("text", { x, y, ...attrs });
  el.textContent = text;
  return el;
}

/** A hover tooltip for an SVG element. */
export function titled<T extends SVGElement>(el: T, title: string): T {
  const t = svgEl("title");
  t.textContent = title;
  el.prepend(t);
  return el;
}

/** A rough text width at a given font size, to decide whether a label fits. */
export function textWidth(text: string, fontSize = 11): number {
  return text.length * fontSize * 0.58;
}

/** A root <svg> sized in CSS pixels (the page redraws at its container's width). */
export function svgRoot(width: number, height: number, label: string): SVGSVGElement {
  return svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
}

/** Nice round tick values from 0 to max. */
export function ticks(max: number, count: number): number[] {
  if (!(max > 0)) return [0];
  const raw = max / Math.max(1, count);
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = 0; v <= max + 1e-9; v += step) out.push(v);
  return out;
}

/** Tick values in tokens: powers-of-two friendly steps (1K, 2K, 4K, ...). */
export function tokenTicks(max: number, count: number): number[] {
  if (!(max > 0)) return [0];
  let step = 1;
  while (max / step > count) step *= 2;
  const out: number[] = [];
  for (let v = 0; v <= max; v += step) out.push(v);
  return out;
}
