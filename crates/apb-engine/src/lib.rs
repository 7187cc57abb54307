//! apb-engine: a Llama-family transformer forward, generic over a `Backend` (CPU here; CUDA
//! in apb-cuda) and a `Comm` (in-process emulation of H hosts; TCP between CPU host processes; NCCL in apb-cuda), running
//! full, APB, Star and Ring prefill with the planner's layouts, then merged decoding.

pub mod backend;
pub mod calibrate;
pub mod comm;
pub mod config;
pub mod control;
pub mod cpu;
pub mod decode;
pub mod engine;
pub mod error;
pub mod exchange;
pub mod heads;
pub mod host;
pub mod kv_cache;
pub mod layer;
pub mod model;
pub mod passing;
pub mod prefill;
pub mod quant;
pub mod rope;
pub mod safetensors;
pub mod sample;
pub mod tcp;
pub mod timing;
pub mod ulysses;
pub mod weights;

pub use config::{Architecture, Llama3Scaling, ModelConfig};
pub use comm::Transfer;
pub use control::{Cancel, Hooks, LayerDone};
pub use engine::{check_request, generate, generate_controlled, generate_host, generate_host_reporting, generate_with, HostOutput, Output, Request};
pub use error::{EngineError, Result};
pub use heads::Heads;
pub use model::Model;
