// The live view (src/live/) is written separately; until it lands, the section says so.
import type { Planner } from "@apb/planner";

export function mountLive(element: HTMLElement, _planner: () => Planner | null): void {
  const p = document.createElement("p");
  p.className = "note";
  p.textContent = "The live view of a running coordinator is not part of this build yet.";
  element.append(p);
}
