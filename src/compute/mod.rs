//! The training compute of a node: device selection, the forward/backward/evaluate engine and
//! the single-process trainer behind `lagom train`.

mod bench_run;
mod config;
mod device;
mod engine;
mod gradient_compare;
mod heap;
mod memory;
mod process_age;
mod step_bench;
mod worker;

pub use bench_run::{run_bench, BenchSpec};
pub use config::{set_cpu_threads, ComputeConfig};
pub use device::{describe, DeviceSpec, CUDA_BUILT};
pub use engine::{Engine, EvalOutput, StepOutput};
pub use gradient_compare::{compare_gradients, describe_side, ComputeSide, GradientDistance};
pub use heap::{
    describe_heap_pages, keep_freed_tensor_buffers, restart_with_huge_page_heap, HUGE_PAGES_ENV,
};
pub use memory::{resident_memory, ResidentMemory};
pub use process_age::process_age;
pub use step_bench::StepBench;
pub use worker::{augment_seed, WorkerCompute, WorkerGradient};
