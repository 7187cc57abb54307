// The hardware profile file `apb calibrate` writes and `apb plan --hardware-file` reads: the
// one reader of that format. It holds a HardwareProfile (the planner's rates) and says which
// of its fields were measured on the machine and which were taken from elsewhere (a preset),
// so a plan made from it can be trusted as far as its measurements go and no further.
import { errorDataFromZod, type ZodProblem } from "@apb/errors";
import { z } from "zod";
import { PlannerError } from "./errors.js";
import { hardwareProfileSchema, type HardwareProfile } from "./schema.js";

/** The fields of a HardwareProfile, in the order the file and tables show them (the last two optional). */
export const HARDWARE_FIELDS = ["matmulTflops", "attentionTflops", "hbmGBs", "linkGBs", "linkLatencyUs", "memoryGiB", "multiprocessors", "attentionBlockUs"] as const;
export type HardwareField = (typeof HARDWARE_FIELDS)[number];

const text = (what: string) => z.string({ error: `must be text: ${what}` });
const field = z.enum(HARDWARE_FIELDS, { error: `must name a profile field: one of ${HARDWARE_FIELDS.join(", ")}` });
const count = z.number({ error: "must be a whole number of at least 1" }).int({ error: "must be a whole number of at least 1" }).min(1, { error: "must be a whole number of at least 1" });

export const hardwareProfileFileSchema = z.strictObject({
  description: text("what this profile describes"),
  measuredAt: z.iso.datetime({ error: "must be when the rates were measured, an ISO 8601 UTC time such as 2026-12-01T09:00:00.000Z" }),
  device: text("the device that was measured"),
  profile: hardwareProfileSchema,
  measured: z
    .array(field, { error: "must list the profile fields that were measured (an array, possibly empty)" })
    .refine((names) => new Set(names).size === names.length, { error: "must name each field at most once" }),
  /** Where each field's value came from, in words ("measured: ...", "from preset h100-nvlink"). */
  sources: z.partialRecord(field, text("where the field's value came from")).optional(),
  /** The sizes the rates were measured at. */
  conditions: z
    .strictObject({
      backend: text("the backend that was measured (cpu or cuda)"),
      modelShape: text("the model whose layer shapes were timed"),
      tokens: count,
      attentionTokens: count,
      warmup: z.number({ error: "must be a whole number" }).int({ error: "must be a whole number" }).min(0, { error: "must be at least 0" }),
      warmupMs: z.number({ error: "must be milliseconds" }).min(0, { error: "must be at least 0" }),
      runs: count,
      sampleMs: z.number({ error: "must be milliseconds" }).min(0, { error: "must be at least 0" }),
    })
    .optional(),
});

/** A hardware profile file as written and read (HardwareProfile under `profile`). */
export type HardwareProfileFile = z.output<typeof hardwareProfileFileSchema> & { profile: HardwareProfile };

function fileWording(fileName: string) {
  return ({ code, path, issue }: ZodProblem): string => {
    const subject = path || "the file";
    const problem =
      code === "UNKNOWN_FIELD"
        ? `${path} is not a field of a hardware profile file; remove it or correct its spelling`
        : code === "MISSING_FIELD"
          ? `${subject} is missing: it ${issue.message}`
          : `${subject} ${issue.message}`;
    return `${fileName}: ${problem} (fix the file, or write it again with apb calibrate --out)`;
  };
}

/** Checks a parsed file; errors name the field (`profile.matmulTflops`) and how to fix it. */
export function checkHardwareProfileFile(value: unknown, fileName = "the hardware profile"): HardwareProfileFile {
  const parsed = hardwareProfileFileSchema.safeParse(value);
  if (!parsed.success) throw new PlannerError(errorDataFromZod(parsed.error, value, fileWording(fileName)));
  return parsed.data as HardwareProfileFile;
}

/** Parses and checks a file's text: INVALID_JSON where it does not parse. */
export function readHardwareProfileFile(json: string, fileName = "the hardware profile"): HardwareProfileFile {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw new PlannerError({ code: "INVALID_JSON", path: "", message: `${fileName} is not JSON (${(e as Error).message}); write it again with apb calibrate --out` });
  }
  return checkHardwareProfileFile(value, fileName);
}
