// Plain aligned text tables: numbers right-aligned, text left-aligned.

export type Cell = string | number;

function isNumeric(cell: Cell): boolean {
  return typeof cell === "number" || /^[-+]?[\d.,]+(\s?[a-zA-Z%x]*)?$/.test(cell);
}

export function formatTable(headers: string[], rows: Cell[][]): string {
  const text = rows.map((row) => row.map(String));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[], raw: Cell[] | null) =>
    cells
      .map((c, i) => (raw && isNumeric(raw[i] ?? "") ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(headers, null), rule, ...text.map((r, i) => line(r, rows[i]!))].join("\n");
}
