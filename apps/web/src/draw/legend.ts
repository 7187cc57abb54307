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
