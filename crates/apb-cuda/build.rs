// Embeds the kernels' fatbins (built from cuda/*.cu by scripts/build-cuda.mjs). Without
// them the crate still builds, and reports at run time that this build has no kernels.
use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(apb_kernels)");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cuda/build");
    let mut all = true;
    for name in ["attention", "attention_sm90", "attention_decode", "merge", "ops"] {
        let src = built.join(format!("{name}.fatbin"));
        println!("cargo::rerun-if-changed={}", src.display());
        let dst = Path::new(&out).join(format!("{name}.fatbin"));
        if src.exists() {
            std::fs::copy(&src, &dst).expect("copy fatbin");
        } else {
            all = false;
            std::fs::write(&dst, []).expect("write empty fatbin");
        }
    }
    if all {
        println!("cargo::rustc-cfg=apb_kernels");
    } else {
        println!("cargo::warning=apb-cuda: no CUDA kernels in this build (cuda/build/*.fatbin missing); the addon is CPU-only");
    }
}
