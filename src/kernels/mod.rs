//! Fast CPU kernels for convolutional training — convolution (forward, input and weight
//! gradients) as a direct 3×3 kernel on AVX2/AVX-512 registers or as im2col + `gemm` for other
//! shapes and CPUs, training-mode batch norm fused with ReLU, the residual sum
//! fused with ReLU, and bias + ReLU + 2×2 max-pooling fused after a convolution — as pure
//! functions on slices, wrapped as candle custom ops with their own backward. Models use them
//! for CPU tensors; candle's own ops stay the reference (and the CUDA path), and every kernel is
//! tested against them.

mod add_relu;
mod batch_norm;
mod candle_ops;
mod conv;
mod conv3x3;
mod conv_shape;
mod cpu_info;
mod half_precision;
mod kernels_config;
mod relu_pool;
mod simd;

pub use add_relu::{add_relu_forward, add_relu_in_place, relu_backward, relu_mask_in_place};
pub use batch_norm::{
    bn_train_backward, bn_train_backward_in_place, bn_train_forward, BnBatchStats, BnShape,
};
pub use candle_ops::{
    add_relu, batch_norm_train, conv2d, conv_bias_relu_pool, f32_slice, with_f32,
};
pub use conv::{conv2d_forward, conv2d_input_grad, conv2d_weight_grad, conv_kernel_names};
pub use conv_shape::ConvShape;
pub use cpu_info::{cpu_model, describe_cpu, simd_level};
pub use half_precision::{
    append_bf16_le_as_f32, append_f32_as_bf16, bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16,
};
pub use kernels_config::CpuKernels;
pub use relu_pool::{bias_relu_pool_backward, bias_relu_pool_forward};
pub use simd::{
    available_simd_paths, best_simd_path, force_simd_path, has_avx2_fma, simd_path,
    simd_path_from_env, SimdPath, SIMD_ENV,
};
