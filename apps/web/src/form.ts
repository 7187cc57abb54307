// The form's elements <-> FormState.
import { HARDWARE_PRESETS, MODEL_PRESETS, STRATEGIES } from "@apb/planner";
import { formatLength } from "./lengths.js";
import { HARDWARE_FIELDS, presetFigures, type FormState } from "./state.js";

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no #${id}`);
  return el as T;
}

function option(value: string, label: string): HTMLOptionElement {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = label;
  return o;
}

export class Form {
  readonly root = byId<HTMLFormElement>("form");
  private readonly model = byId<HTMLSelectElement>("model");
  private readonly config = byId<HTMLTextAreaElement>("config");
  private readonly context = byId<HTMLInputElement>("context");
  private readonly query = byId<HTMLInputElement>("query");
  private readonly hosts = byId<HTMLInputElement>("hosts");
  private readonly hardware = byId<HTMLSelectElement>("hardware");
  private readonly strategy = byId<HTMLSelectElement>("strategy");
  private readonly anchor = byId<HTMLInputElement>("anchor");
  private readonly passing = byId<HTMLInputElement>("passing");
  private readonly balanced = byId<HTMLInputElement>("balanced");
  private lastPreset: string;

  constructor() {
    for (const [name, preset] of Object.entries(MODEL_PRESETS)) {
      this.model.append(option(name, `${name} (${formatLength(preset.contextLimitTokens)})`));
    }
    this.model.append(option("custom", "paste a config.json…"));
    for (const name of Object.keys(HARDWARE_PRESETS)) this.hardware.append(option(name, name));
    this.hardware.append(option("custom", "custom figures…"));
    for (const s of STRATEGIES) this.strategy.append(option(s, s));
    this.lastPreset = this.hardware.value;
    this.hardware.addEventListener("change", () => {
      // Custom figures start from the preset chosen before.
      if (this.hardware.value === "custom") this.writeFigures(presetFigures(this.lastPreset));
      else this.lastPreset = this.hardware.value;
      this.showConditional();
    });
    this.model.addEventListener("change", () => this.showConditional());
  }

  private figure(field: string): HTMLInputElement {
    return byId<HTMLInputElement>(`hw-${field}`);
  }

  private writeFigures(figures: FormState["custom"]): void {
    for (const f of HARDWARE_FIELDS) this.figure(f).value = figures[f];
  }

  private showConditional(): void {
    byId("config-field").hidden = this.model.value !== "custom";
    byId("custom-hardware").hidden = this.hardware.value !== "custom";
    const presets: Record<string, { description: string }> = HARDWARE_PRESETS;
    byId("hardware-help").textContent = presets[this.hardware.value]?.description ?? "your own figures, per GPU";
  }

  read(): FormState {
    return {
      model: this.model.value,
      config: this.model.value === "custom" ? this.config.value : "",
      context: this.context.value,
      query: this.query.value,
      hosts: this.hosts.value,
      hardware: this.hardware.value,
      custom: Object.fromEntries(HARDWARE_FIELDS.map((f) => [f, this.figure(f).value])) as FormState["custom"],
      strategy: this.strategy.value,
      anchor: this.anchor.value,
      passing: this.passing.value,
      balanced: this.balanced.checked,
    };
  }

  /** Writes a state; a value no option holds (from a hand-edited URL) is added so the planner can name it. */
  write(state: Partial<FormState>): void {
    const select = (el: HTMLSelectElement, value: string | undefined) => {
      if (value === undefined) return;
      if (![...el.options].some((o) => o.value === value)) el.append(option(value, value));
      el.value = value;
    };
    select(this.model, state.model);
    select(this.hardware, state.hardware);
    select(this.strategy, state.strategy);
    if (state.config !== undefined) this.config.value = state.config;
    if (state.context !== undefined) this.context.value = state.context;
    if (state.query !== undefined) this.query.value = state.query;
    if (state.hosts !== undefined) this.hosts.value = state.hosts;
    if (state.anchor !== undefined) this.anchor.value = state.anchor;
    if (state.passing !== undefined) this.passing.value = state.passing;
    if (state.balanced !== undefined) this.balanced.checked = state.balanced;
    if (state.custom) this.writeFigures(state.custom);
    if (this.hardware.value !== "custom") this.lastPreset = this.hardware.value;
    this.showConditional();
  }

  /** The planner's defaults for anchor and passing, shown while those fields are empty. */
  showDefaults(anchor: number | null, passing: number | null): void {
    this.anchor.placeholder = anchor === null ? "" : `default ${anchor}`;
    this.passing.placeholder = passing === null ? "" : `default ${passing}`;
  }

  onChange(listener: (immediate: boolean) => void): void {
    this.root.addEventListener("input", (e) => listener(!(e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement) || (e.target as HTMLInputElement).type === "checkbox"));
    this.root.addEventListener("change", () => listener(true));
    this.root.addEventListener("submit", (e) => {
      e.preventDefault();
      listener(true);
    });
  }
}
