"""Model FLOPs utilisation: achieved training FLOP/s over the hardware's peak.

FLOPs per token follow the PaLM paper's appendix B (as nanoGPT's ``estimate_mfu`` does):
6 per parameter for the forward and backward matmuls, plus attention's
``12 * layers * hidden * seq_len``. Peaks are dense bf16 tensor-core figures from the
vendors' data sheets; a CPU has no such figure, so there MFU is logged only when
``train.peak_tflops`` gives one.
"""

from __future__ import annotations

# Dense bf16 TFLOP/s (no sparsity), matched as a substring of torch.cuda.get_device_name().
PEAK_BF16_TFLOPS = {
    # Checked in order: a longer name before its prefix ("H100 PCIe" before "H100").
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
    "L4": 121.0,
}


def flops_per_token(n_params: int, num_layers: int, hidden_size: int, seq_len: int) -> float:
    return 6.0 * n_params + 12.0 * num_layers * hidden_size * seq_len


def peak_flops(configured_tflops: float, device_name: str | None) -> float | None:
    """Peak FLOP/s of one worker's device: the configured figure, else a known GPU's."""
    if configured_tflops > 0:
        return configured_tflops * 1e12
    for name, tflops in PEAK_BF16_TFLOPS.items():
        if device_name and name in device_name:
            return tflops * 1e12
    return None


def mfu(tokens_per_s: float, per_token: float, peak_per_worker: float, workers: int) -> float:
    return tokens_per_s * per_token / (peak_per_worker * workers)
