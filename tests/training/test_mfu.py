"""MFU arithmetic and peak lookup (the loop logs train/mfu from these)."""

import pytest

from lmops.training.mfu import flops_per_token, mfu, peak_flops


def test_flops_per_token_follows_palm_appendix_b():
    # GPT-2 124M at 1024 tokens: 6 * 124M + 12 * 12 * 768 * 1024 = 857.3M FLOPs per token.
    assert flops_per_token(124_000_000, 12, 768, 1024) == pytest.approx(857_246_208)


@pytest.mark.parametrize(
    ("configured", "device", "expected_tflops"),
    [
        (0, "NVIDIA H200", 989),
        (0, "NVIDIA H100 80GB HBM3", 989),
        (0, "NVIDIA H100 PCIe", 756),  # not the SXM figure its prefix would give
        (0, "NVIDIA L40S", 362),  # not L4's
        (0, "NVIDIA L4", 121),
        (400, "NVIDIA H200", 400),  # a configured figure wins
        (2.5, None, 2.5),  # a CPU, configured
    ],
)
def test_peak_flops(configured, device, expected_tflops):
    assert peak_flops(configured, device) == pytest.approx(expected_tflops * 1e12)


def test_no_peak_for_an_unknown_device_means_no_mfu():
    assert peak_flops(0, None) is None and peak_flops(0, "Some GPU") is None


def test_mfu_divides_by_every_workers_peak():
    assert mfu(1000.0, 1e9, 1e12, 2) == pytest.approx(0.5)
