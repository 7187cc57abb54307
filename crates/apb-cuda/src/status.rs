//! The kernels' C launchers' status codes (cuda/status.h), mirrored once, and the error each
//! becomes. The engine launches the kernels through the driver API and checks shapes before
//! it does, so a launcher's refusal of a shape is a bug on our side (INTERNAL), while a failed
//! launch is the driver's (CUDA). The test below reads the header, so the two cannot drift.

use apb_engine::error::{code, EngineError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum KernelStatus {
    Ok = 0,
    BadShape = 1,
    BadHeadDim = 2,
    BadHeads = 3,
    BadSegments = 4,
    BadPointer = 5,
    BadAlignment = 6,
    LaunchFailed = 7,
}

impl KernelStatus {
    pub const ALL: [KernelStatus; 8] = [
        KernelStatus::Ok,
        KernelStatus::BadShape,
        KernelStatus::BadHeadDim,
        KernelStatus::BadHeads,
        KernelStatus::BadSegments,
        KernelStatus::BadPointer,
        KernelStatus::BadAlignment,
        KernelStatus::LaunchFailed,
    ];

    /// The status a launcher returned, or None for a number the header does not define.
    pub fn from_raw(raw: i32) -> Option<KernelStatus> {
        KernelStatus::ALL.iter().copied().find(|s| *s as i32 == raw)
    }

    /// Its name in cuda/status.h.
    pub fn c_name(self) -> &'static str {
        match self {
            KernelStatus::Ok => "APB_OK",
            KernelStatus::BadShape => "APB_BAD_SHAPE",
            KernelStatus::BadHeadDim => "APB_BAD_HEAD_DIM",
            KernelStatus::BadHeads => "APB_BAD_HEADS",
            KernelStatus::BadSegments => "APB_BAD_SEGMENTS",
            KernelStatus::BadPointer => "APB_BAD_POINTER",
            KernelStatus::BadAlignment => "APB_BAD_ALIGNMENT",
            KernelStatus::LaunchFailed => "APB_LAUNCH_FAILED",
        }
    }

    /// The error code a launch that ended with this status raises (None for APB_OK).
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            KernelStatus::Ok => None,
            KernelStatus::LaunchFailed => Some(code::CUDA),
            _ => Some(code::INTERNAL),
        }
    }
}

/// Ok for APB_OK, else the error `kernel`'s launcher reported with `raw`.
pub fn check(kernel: &str, raw: i32) -> Result<(), EngineError> {
    let Some(status) = KernelStatus::from_raw(raw) else {
        return Err(EngineError::new(code::INTERNAL, kernel, format!("{kernel} returned status {raw}, which cuda/status.h does not define")));
    };
    match status.error_code() {
        None => Ok(()),
        Some(c) => Err(EngineError::new(c, kernel, format!("{kernel} returned {}", status.c_name()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `NAME = value` of the enum in cuda/status.h.
    fn header() -> Vec<(String, i32)> {
        let text = include_str!("../../../cuda/status.h");
        let body = &text[text.find("typedef enum {").expect("status.h has the enum")..];
        let body = &body[..body.find('}').expect("the enum ends")];
        body.lines()
            .map(|l| l.split("//").next().unwrap_or("").trim().trim_end_matches(','))
            .filter_map(|l| l.split_once('='))
            .map(|(name, value)| (name.trim().to_string(), value.trim().parse().expect("a number")))
            .collect()
    }

    #[test]
    fn the_mirror_is_the_header() {
        let mirror: Vec<(String, i32)> = KernelStatus::ALL.iter().map(|s| (s.c_name().to_string(), *s as i32)).collect();
        assert_eq!(mirror, header());
    }

    #[test]
    fn a_failed_launch_is_the_drivers_and_a_refused_shape_is_ours() {
        assert!(check("apb_merge_bf16", 0).is_ok());
        assert_eq!(check("apb_merge_bf16", KernelStatus::LaunchFailed as i32).unwrap_err().code, code::CUDA);
        let e = check("apb_rms_norm_bf16", KernelStatus::BadShape as i32).unwrap_err();
        assert_eq!((e.code, e.path.as_str()), (code::INTERNAL, "apb_rms_norm_bf16"));
        assert!(e.message.contains("APB_BAD_SHAPE"), "{}", e.message);
        assert_eq!(check("x", 99).unwrap_err().code, code::INTERNAL);
    }
}
