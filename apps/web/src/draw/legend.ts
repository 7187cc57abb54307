// An HTML legend (it wraps on narrow screens, unlike SVG text).
export function legend(items: { className: string; label: string }[]): HTMLElement {
  const list = document.createElement("ul");
  list.className = "legend";
  for (const item of items) {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch ${item.className}`;
    swatch.setAttribute("aria-hidden", "true");
    li.append(swatch, item.label);
    list.append(li);
  }
  return list;
}

/** Which hosts to draw: all up to `max`, else the first and last halves (an elision row between). */
export function drawnHosts(hosts: number, max = 64): (number | "gap")[] {
  if (hosts <= max) return Array.from({ length: hosts }, (_, i) => i);
  const half = Math.floor(max / 2);
  return [...Array.from({ length: half }, (_, i) => i), "gap", ...Array.from({ length: half }, (_, i) => hosts - half + i)];
}
