// `apb doctor`: what this machine offers apb (GPUs, driver, cuBLAS, NCCL, this build).
import type { Command } from "commander";
import { doctor } from "@apb/runtime";
import { renderDoctor } from "../render/doctor.js";

export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description("Show what apb can use on this machine: GPUs, the NVIDIA driver, cuBLAS, NCCL, this build's kernels")
    .option("--json", "print JSON only")
    .action((o: { json?: boolean }) => {
      const report = doctor();
      process.stdout.write(`${o.json ? JSON.stringify(report, null, 2) : renderDoctor(report)}\n`);
    });
}
