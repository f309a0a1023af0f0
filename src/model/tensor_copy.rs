//! Copying flat f32 values into a candle variable and out of a tensor with one copy on the CPU
//! (candle's own way, `Tensor::from_slice` + `Var::set` and `to_vec1`, copies twice), and the
//! plain way on other devices.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, InplaceOp1, Layout, Result, Storage, Tensor, Var};

use crate::kernels::f32_slice;

/// Writes `values` into a contiguous CPU storage through its layout.
struct WriteValues<'a> {
    values: &'a [f32],
}

impl InplaceOp1 for WriteValues<'_> {
    fn name(&self) -> &'static str {
        "write-values"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("write-values: the variable is not contiguous".into())
        })?;
        match storage {
            CpuStorage::F32(data) if end - start == self.values.len() && end <= data.len() => {
                data[start..end].copy_from_slice(self.values);
                Ok(())
            }
            CpuStorage::F32(_) => Err(candle_core::Error::Msg(format!(
                "write-values: {} values for a variable of {}",
                self.values.len(),
                end - start
            ))),
            other => Err(candle_core::Error::Msg(format!(
                "write-values: the variable holds {:?}, not f32",
                other.dtype()
            ))),
        }
    }
}

/// Sets `var` (of `values.len()` elements) to `values`; in place with one copy on the CPU.
pub fn set_var(var: &Var, values: &[f32]) -> Result<()> {
    if var.device().is_cpu() && var.elem_count() == values.len() {
        return var.inplace_op1(&WriteValues { values });
    }
    var.set(&Tensor::from_slice(values, var.dims(), var.device())?)
}

/// Copies the values of `t` (of `out.len()` elements, any shape) into `out`, with one copy when
/// `t` is a contiguous f32 CPU tensor.
pub fn copy_values(t: &Tensor, out: &mut [f32]) -> Result<()> {
    if t.elem_count() != out.len() {
        return Err(candle_core::Error::Msg(format!(
            "copy-values: a tensor of {} values into {}",
            t.elem_count(),
            out.len()
        )));
    }
    {
        let (storage, layout) = t.storage_and_layout();
        if let Storage::Cpu(cpu) = &*storage {
            if let Ok(values) = f32_slice(cpu, layout, "copy-values") {
                out.copy_from_slice(values);
                return Ok(());
            }
        }
    }
    out.copy_from_slice(&t.flatten_all()?.to_vec1::<f32>()?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn sets_and_reads_back_exactly() {
        let var = Var::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        let values = [1.0, -2.0, 3.5, f32::MIN_POSITIVE, 0.0, 7.25];
        set_var(&var, &values).unwrap();
        assert_eq!(var.flatten_all().unwrap().to_vec1::<f32>().unwrap(), values);
        let mut out = [0.0f32; 6];
        copy_values(var.as_tensor(), &mut out).unwrap();
        assert_eq!(out, values);
    }

    #[test]
    fn a_view_is_read_through_its_layout() {
        let t = Tensor::arange(0f32, 12.0, &Device::Cpu)
            .unwrap()
            .reshape((3, 4))
            .unwrap();
        // A row slice is contiguous with an offset; a transpose is not contiguous.
        let mut row = [0.0f32; 4];
        copy_values(&t.narrow(0, 1, 1).unwrap(), &mut row).unwrap();
        assert_eq!(row, [4.0, 5.0, 6.0, 7.0]);
        let mut col = [0.0f32; 12];
        copy_values(&t.t().unwrap(), &mut col).unwrap();
        assert_eq!(col[..4], [0.0, 4.0, 8.0, 1.0]);
    }

    #[test]
    fn wrong_lengths_are_errors_not_partial_writes() {
        let var = Var::zeros(4, DType::F32, &Device::Cpu).unwrap();
        assert!(set_var(&var, &[1.0; 3]).is_err());
        assert_eq!(var.to_vec1::<f32>().unwrap(), [0.0; 4]);
        assert!(copy_values(var.as_tensor(), &mut [0.0; 5]).is_err());
    }

    #[test]
    fn a_var_in_a_graph_keeps_its_gradient_after_set() {
        // Setting in place must behave as candle's `Var::set`: the next forward pass sees it.
        let var = Var::zeros(3, DType::F32, &Device::Cpu).unwrap();
        set_var(&var, &[1.0, 2.0, 3.0]).unwrap();
        let y = var.as_tensor().sqr().unwrap().sum_all().unwrap();
        let g = y.backward().unwrap();
        let mut out = [0.0f32; 3];
        copy_values(g.get(var.as_tensor()).unwrap(), &mut out).unwrap();
        assert_eq!(out, [2.0, 4.0, 6.0]);
    }
}
