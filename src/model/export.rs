//! The trained model out and back in: `model.safetensors`, one tensor per variable under the
//! names and shapes PyTorch uses for the same modules (`benches/torch_models.py` defines them),
//! batch-norm running statistics and PyTorch's `num_batches_tracked` counters included, so
//! `load_state_dict` takes it as it is.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

use super::Network;

/// The file name of an exported model in a run directory.
pub const MODEL_FILE: &str = "model.safetensors";

/// The largest model file `load_safetensors` reads (lagom's models are about 1 MB).
pub const MAX_MODEL_FILE_BYTES: u64 = 1 << 30;

/// PyTorch's per-batch-norm counter, written (as 0: lagom's running statistics use a fixed
/// momentum, so PyTorch never reads it) and ignored on reading.
const BATCHES_TRACKED: &str = "num_batches_tracked";

/// `net`'s variables as a safetensors file (bytes), with the model's name and layout hash in the
/// file's metadata.
pub fn to_safetensors(net: &Network) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, var) in net.layout().variables() {
        tensors.push((name.to_string(), var.as_tensor().to_device(&Device::Cpu)?));
        if let Some(prefix) = name.strip_suffix(".running_mean") {
            let counter = Tensor::new(0i64, &Device::Cpu)?;
            tensors.push((format!("{prefix}.{BATCHES_TRACKED}"), counter));
        }
    }
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("lagom_model".to_string(), net.name().as_str().to_string()),
        (
            "lagom_layout_hash".to_string(),
            format!("{:016x}", net.layout().hash()),
        ),
    ]);
    safetensors::serialize(tensors, Some(metadata)).context("cannot encode the model")
}

/// Sets every variable of `net` (parameters and running statistics) from the safetensors file at
/// `path`. Every variable must be there with its exact shape; a tensor the model does not have
/// is an error too; each error names the file and the tensor.
pub fn load_safetensors(net: &Network, path: &Path) -> Result<()> {
    let shown = path.display();
    // Read through a limit, so a file that grows meanwhile cannot take more than it allows.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_MODEL_FILE_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read the model file {shown}"))?;
    if bytes.len() as u64 > MAX_MODEL_FILE_BYTES {
        bail!("model file {shown} is larger than the {MAX_MODEL_FILE_BYTES} bytes allowed");
    }
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{shown} is not a safetensors file"))?;
    let saved_model = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("lagom_model"));
    if let Some(saved) = saved_model.filter(|m| m.as_str() != net.name().as_str()) {
        bail!(
            "{shown} holds a `{saved}` model, the configuration's model.name is `{}`",
            net.name().as_str()
        );
    }
    let mut file = candle_core::safetensors::load_buffer(&bytes, net.device())
        .with_context(|| format!("{shown} is not a safetensors file"))?;
    // Everything is checked before anything is set: a bad file leaves the model as it was.
    let mut missing = Vec::new();
    let mut found = Vec::new();
    for (name, var) in net.layout().variables() {
        let Some(t) = file.remove(name) else {
            missing.push(name.to_string());
            continue;
        };
        if t.dims() != var.dims() || t.dtype() != DType::F32 {
            bail!(
                "{shown}: {name} is {:?} {:?}, the {} model needs F32 {:?}",
                t.dtype(),
                t.dims(),
                net.name().as_str(),
                var.dims()
            );
        }
        found.push((name, var, t));
    }
    if !missing.is_empty() {
        bail!(
            "{shown} lacks {} tensor(s) of the {} model: {}",
            missing.len(),
            net.name().as_str(),
            missing.join(", ")
        );
    }
    let mut extra: Vec<String> = file
        .into_keys()
        .filter(|n| !n.ends_with(BATCHES_TRACKED))
        .collect();
    extra.sort();
    if !extra.is_empty() {
        bail!(
            "{shown} has tensor(s) the {} model does not: {}",
            net.name().as_str(),
            extra.join(", ")
        );
    }
    for (name, var, t) in found {
        var.set(&t)
            .with_context(|| format!("{shown}: cannot set {name}"))?;
    }
    Ok(())
}
