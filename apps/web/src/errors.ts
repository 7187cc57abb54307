// Messages beside the fields they name: each field has a <p id="error-<field>"> that the
// field's aria-describedby points at; anything unplaceable goes to the general box.
import type { FieldError, FieldId } from "./request.js";

export function clearErrors(root: HTMLElement): void {
  for (const p of root.querySelectorAll<HTMLElement>(".field-error")) {
    p.textContent = "";
    p.hidden = true;
  }
  for (const el of root.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

export function showErrors(root: HTMLElement, errors: FieldError[]): void {
  for (const error of errors) {
    const slot = root.querySelector<HTMLElement>(`#error-${error.field}`) ?? root.querySelector<HTMLElement>("#error-general")!;
    slot.textContent = slot.textContent ? `${slot.textContent} ${error.message}` : error.message;
    slot.hidden = false;
    root.querySelector(`#${error.field}`)?.setAttribute("aria-invalid", "true");
  }
}

export type { FieldError, FieldId };
