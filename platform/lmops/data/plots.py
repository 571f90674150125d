"""PNG plots of a dataset version: length histogram, language mix, reject reasons."""

from __future__ import annotations

from pathlib import Path


def write_plots(folder: Path, manifest: dict) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pyarrow.parquet as pq

    out = []
    c = manifest["counts"]
    files = sorted(folder.glob("metrics-*.parquet"))
    lengths = pq.read_table(files, columns=["n_chars"]).column(0).to_numpy() if files else []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if len(lengths):
        import numpy as np

        ax.hist(np.log10(np.maximum(lengths, 1)), bins=40, color="#3b7dd8")
    ax.set(
        title=f"Document length ({manifest['version_id']})",
        xlabel="log10(characters)",
        ylabel="documents",
    )
    out.append(_save(fig, folder / "plot_length_histogram.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    langs = c.get("langs", {})
    ax.bar(list(langs), list(langs.values()), color="#2a9d8f")
    ax.set(title="Language mix of accepted documents", ylabel="documents")
    out.append(_save(fig, folder / "plot_language_mix.png"))

    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * len(c.get("reasons", {})) + 1)))
    reasons = dict(sorted(c.get("reasons", {}).items(), key=lambda kv: kv[1]))
    ax.barh(list(reasons) or ["(none)"], list(reasons.values()) or [0], color="#e76f51")
    ax.set(
        title=f"Quarantine by rule ({c.get('quarantined', 0)} of {c.get('input', 0)})",
        xlabel="records",
    )
    out.append(_save(fig, folder / "plot_reject_reasons.png"))
    return out


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
