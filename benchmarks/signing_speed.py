"""What signed evidence costs: signing, verifying, the serving check, and the audit's revert.

    .venv/bin/python benchmarks/signing_speed.py [--repeats 5] [--repeats-124m N]
        [--audit-repeats 10] [--sizes small,gpt2-124m] [--out results.json]

A fresh LMOPS_HOME (its signing key is made on first use) and a fresh SQLite MLflow
store (embedded mode, local artifact store: a "download" is a local copy) get, for
each model size, one random-init Hugging Face model logged and registered as the
pipeline does (``log_and_register``: mlflow.transformers, safetensors weights):

* ``small``: the project's ``small`` preset (Llama, 256 wide, 4 layers, the 4k
  vocabulary of pipelines/configs/cpu.toml; 4.2M parameters, 17 MB of files);
* ``gpt2-124m``: ``GPT2Config()`` defaults (124M parameters, 498 MB of files, fp32).

Then, per size and per repeat, it times (the same work each repeat; medians reported;
``os.sync()`` before each timed step, so that no writeback of the previous step's
files competes with it):

* ``sign``: ``sign_version`` (download the version's files, model-signing over them,
  sign the in-toto evidence statement, set the tags);
* ``verify at promotion``: ``verify_version``, as the gate runs it (signature, a fresh
  download and hash of the files, tags);
* ``serving check``: ``model_registry.verify.verified_download`` of ``NAME@staging``
  (signature, tags and the signed promotion record, then the download and the hash
  of the downloaded files), what ``lmops serve`` does before it loads; and its two
  parts besides the download: the checks before it (``verify(ref, check_files=False)``)
  and ``attestation.verify_model_files`` on the already-downloaded files (hashing and
  signature check, no download);
* ``download alone``: the same download without any check;
* ``load``: ``load_for_eval`` on the downloaded MLflow folder, on CPU, as serving
  loads (transformers maps the safetensors file: the weights are read on first use),
  and ``load + first forward pass`` (one token), which reads every weight;
* model-signing's hashing alone, BLAKE3 (what lmops signs with) and SHA-256 (its
  default), for comparison;
* what ``lmops serve`` does, ``load_verified`` (the checks, the download, the hash run
  while the engine loads the same files), against the same download and load with no
  check; the median of the per-repeat ratios is the cost of verification at a swap.

Verification on the serving path (which downloads anyway) is the checks plus the
hash+verify; it is reported as a share of ``load`` (target: at most 10%) and of
``load + first forward pass``.

Outputs are compared, not only timed: every signature's root digest equals the first
one, ``verify_version`` and the serving check name that digest, the weights loaded
from the verified files equal the model that was logged, and a copy of the files
with one byte changed is refused by ``verify_model_files``.

Last, the audit: ``pipelines.registry_audit.watch(revert=True, interval_s=1.0)`` runs
in a thread (an embedded store has no webhooks: polling only) while ``@staging`` of
the ``small`` model is moved out of band (``MlflowClient().set_registered_model_alias``)
to a signed version no gate passed, at a random point of the polling interval; it
times the move until the alias holds the gate-promoted version again, and checks
that the revert is a signed move. It also times the audit's work alone: a pass that
reverts, and a pass over a verified alias. Each pass downloads and hashes the
holder's files, so the ``small`` model's size matters here.

At default settings this takes about one minute on 2 CPU cores (no GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from registry_evidence import GOOD, same  # benchmarks/ is on sys.path

REPO = Path(__file__).resolve().parent.parent
SIZES = ("small", "gpt2-124m")
SMALL_VOCAB = 4096  # pipelines/configs/cpu.toml, the config that uses the small preset


def tokenizer():
    from lmops.config import TokenizerConfig
    from lmops.tokenizer import train_tokenizer

    path = REPO / "platform" / "lmops" / "corpus" / "bilingual.jsonl"
    texts = [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines() if line]
    return train_tokenizer(texts, TokenizerConfig(vocab_size=SMALL_VOCAB, min_frequency=1))


def build(size: str, tok, folder: Path):
    """A random-init model of ``size`` saved with its tokenizer in ``folder``; the model."""
    import torch
    from transformers import GPT2Config

    from lmops.config import ModelConfig
    from lmops.config.presets import PRESETS
    from lmops.models.presets import build_hf_config, build_model

    torch.manual_seed(0)
    if size == "small":
        cfg = build_hf_config(
            ModelConfig(**PRESETS["small"], preset="small"),
            SMALL_VOCAB,
            tok.bos_token_id,
            tok.eos_token_id,
            tok.pad_token_id,
        )
    else:  # GPT-2 small's defaults: 124M parameters with its 50,257-token vocabulary
        cfg = GPT2Config(
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    model = build_model(cfg).eval()
    model.save_pretrained(folder)  # safetensors
    tok.save_pretrained(folder)
    return model


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def bench_size(size: str, repeats: int, work: Path) -> dict:
    import mlflow
    import torch
    from mlflow import MlflowClient

    from lmops.evaluation.loading import load_for_eval
    from model_registry import attestation
    from model_registry import tags as T
    from model_registry.attestation import Unverified
    from model_registry.promotion import promote
    from model_registry.register import log_and_register
    from model_registry.signed_evidence import Author, download, sign_version, verify_version
    from model_registry.verify import load_verified, verified_download, verify

    name = f"bench-{size}"
    pipeline = Author("lmops-pipeline", False, "local, no authentication")
    lineage = {T.DATA_VALIDATION: "passed", T.DATASET_VERSION: f"ds-{size}"}
    t0 = time.perf_counter()
    folder = work / f"hf-{size}"
    model = build(size, tokenizer(), folder)
    params = sum(p.numel() for p in model.parameters())
    mlflow.set_experiment(f"bench-{size}")
    with mlflow.start_run():
        _, version, _ = log_and_register(folder, name, lineage, f"# {size} (benchmark)")
    setup_s = time.perf_counter() - t0
    print(
        f"[{size}] {params / 1e6:.1f}M parameters; built, logged and registered v{version} "
        f"in {setup_s:.0f} s",
        flush=True,
    )
    source = MlflowClient().get_model_version(name, version).source

    sign_s, roots = [], []
    for _ in range(repeats):
        os.sync()
        t = time.perf_counter()
        tags = sign_version(name, version, GOOD, "es-bench", lineage, pipeline)
        sign_s.append(time.perf_counter() - t)
        roots.append(attestation.files_digest(tags[T.MODEL_SIGNATURE]))
    assert len(set(roots)) == 1, f"the same files signed to different digests: {roots}"
    root = roots[0]
    bundle = tags[T.MODEL_SIGNATURE]

    out = promote(name, version, "staging", rescore=same)  # the serving check needs a record
    assert out.decision.passed, out.decision.reasons

    verify_s = []
    for _ in range(repeats):
        os.sync()
        t = time.perf_counter()
        signed = verify_version(name, version)
        verify_s.append(time.perf_counter() - t)
        assert signed.files_digest == root

    from model_signing import hashing

    ref = f"models:/{name}@staging"
    label = f"{name} v{version}"
    samples: dict[str, list[float]] = {
        k: [] for k in ("serving_check", "checks", "download", "hash_verify", "load", "forward")
    }
    samples.update(sha256_only=[], blake3_only=[], serve_verified=[], serve_plain=[])
    nbytes, manifests = 0, []
    original = {k: v.detach().clone() for k, v in model.state_dict().items()}
    del model

    def timed(key: str, fn, *a):
        os.sync()  # no writeback of the previous step's files competes with this one
        t = time.perf_counter()
        out = fn(*a)
        samples[key].append(time.perf_counter() - t)
        return out

    for i in range(repeats):
        checked, plain = work / f"serve-{size}-{i}", work / f"plain-{size}-{i}"
        # Alternate which download goes first: the second one finds the artifact
        # store's files in the page cache, and the first one's writes still pending.
        order = ("checked", "plain") if i % 2 == 0 else ("plain", "checked")
        for which in order:
            if which == "checked":
                got = timed("serving_check", verified_download, ref, checked)
                assert got[:2] == (name, version), got
                files = got[2]
            else:
                plain_files = timed("download", download, source, plain)
        # The serving check's own work apart from the download: the checks before it
        # (signature, tags, promotion record) and the hash+verify of the files after it.
        report = timed("checks", verify, ref, None, False)
        assert report.ok and report.evidence.files_digest == root, report.why
        timed("hash_verify", attestation.verify_model_files, files, bundle, label)
        loaded = timed("load", load_for_eval, str(files), "cpu")
        with torch.no_grad():  # the first forward pass reads every weight
            timed("forward", loaded.model, torch.tensor([[loaded.tokenizer.eos_token_id]]))
        if i == 0:  # what is served is what was logged and signed
            state = loaded.model.state_dict()
            assert set(state) == set(original), "the loaded model has other weights"
            assert all(torch.equal(state[k], original[k]) for k in original)
        del loaded
        # model-signing's hashing alone: its default (SHA-256) and BLAKE3, what lmops
        # signs with.
        sha = timed("sha256_only", hashing.Config().use_file_serialization().hash, files)
        b3 = hashing.Config().use_file_serialization(hashing_algorithm="blake3")
        blake = timed("blake3_only", b3.hash, files)
        manifests.append((sha, blake))
        assert manifests[-1] == manifests[0], "the same files hashed differently"
        nbytes = folder_bytes(plain_files)
        if i == 0:  # one changed byte in the weights is refused
            weights = max(plain_files.rglob("*.safetensors"), key=lambda p: p.stat().st_size)
            with weights.open("r+b") as f:
                f.seek(weights.stat().st_size // 2)
                b = f.read(1)
                f.seek(-1, 1)
                f.write(bytes([b[0] ^ 1]))
            try:
                attestation.verify_model_files(plain_files, bundle, label)
            except Unverified:
                pass
            else:
                raise AssertionError("a tampered weights file verified")
        shutil.rmtree(checked)
        shutil.rmtree(plain)
        # What `lmops serve` does (load_verified: checks, download, hash while loading)
        # against the same download and load with no check; the same weights come out.
        lv, lu = work / f"lv-{size}-{i}", work / f"lu-{size}-{i}"

        def serve_plain(dst=lu):
            return load_for_eval(str(download(source, dst)), "cpu")

        def serve_checked(dst=lv):
            return load_verified(ref, dst, lambda f, n, v: load_for_eval(str(f), "cpu"))[2]

        pair = (("serve_verified", serve_checked), ("serve_plain", serve_plain))
        loaded = {k: timed(k, fn) for k, fn in (pair if i % 2 == 0 else pair[::-1])}
        if i == 0:
            a, b = (x.model.state_dict() for x in loaded.values())
            assert all(torch.equal(a[k], b[k]) for k in a), "verified load differs"
        del loaded
        shutil.rmtree(lv)
        shutil.rmtree(lu)
    del original

    samples_s = {"sign": sign_s, "verify_version": verify_s, **samples}
    m = {k: med(v) for k, v in samples_s.items()}
    m["ready"] = med([a + b for a, b in zip(samples["load"], samples["forward"], strict=True)])
    m["serve_ratio"] = med(
        [a / b for a, b in zip(samples["serve_verified"], samples["serve_plain"], strict=True)]
    )
    m["verification"] = med(
        [a + b for a, b in zip(samples["checks"], samples["hash_verify"], strict=True)]
    )
    return {
        "parameters": params,
        "files_bytes": nbytes,
        "repeats": repeats,
        "setup_s": setup_s,
        "samples_s": samples_s,
        "median_s": m,
        # What verification adds to the serving path, which downloads anyway.
        "pct": {
            "verification_of_load": 100 * m["verification"] / m["load"],
            "verification_of_ready": 100 * m["verification"] / m["ready"],
            "hash_verify_of_load": 100 * m["hash_verify"] / m["load"],
            "serving_check_of_download_plus_load": (
                100 * m["serving_check"] / (m["download"] + m["load"])
            ),
            # The swap's cost as served: median of per-repeat ratios, minus 1.
            "serve_overhead": 100 * (m["serve_ratio"] - 1),
        },
    }


def bench_audit(repeats: int, interval_s: float = 1.0) -> dict:
    """Move @staging of the small model out of band; time until the audit reverts it."""
    import random

    from mlflow import MlflowClient

    from model_registry import history_read
    from model_registry import tags as T
    from model_registry.audit import audit_model
    from model_registry.signed_evidence import Author, sign_version
    from model_registry.verify import verify
    from model_registry.versions import holder
    from pipelines.registry_audit import watch

    name = "bench-small"
    client = MlflowClient()
    good = holder(name, "staging")
    # A second, signed version of the same files that no gate passed.
    mv = client.create_model_version(name, source=client.get_model_version(name, good).source)
    rogue = str(mv.version)
    sign_version(
        name,
        rogue,
        GOOD,
        "es-bench",
        {T.DATA_VALIDATION: "passed", T.DATASET_VERSION: "ds-small"},
        Author("lmops-pipeline", False, "local, no authentication"),
    )
    assert verify(f"{name}@staging").ok
    rng = random.Random(0)
    findings: list = []
    stop = threading.Event()
    thread = threading.Thread(
        target=watch,
        kwargs=dict(revert=True, interval_s=interval_s, stop=stop, on_finding=findings.append),
        daemon=True,
    )
    thread.start()
    times = []
    try:
        time.sleep(interval_s * 2)  # the first pass (imports, store) is not what is timed
        for _ in range(repeats):
            seen = len(findings)
            t = time.perf_counter()
            client.set_registered_model_alias(name, "staging", rogue)
            deadline = t + 120
            while str(client.get_model_version_by_alias(name, "staging").version) != good:
                if time.perf_counter() > deadline:
                    raise AssertionError("the audit did not revert the move within 120 s")
                time.sleep(0.02)
            times.append(time.perf_counter() - t)
            while len(findings) == seen:  # the pass that reverted it has reported
                time.sleep(0.02)
            f = findings[-1]
            assert (f.alias, f.version, f.reverted_to) == ("staging", rogue, good), f
            assert verify(f"{name}@staging").ok  # the revert is a signed move
            # The next move lands at a random point of the polling interval.
            time.sleep(0.3 + rng.uniform(0, interval_s))
    finally:
        stop.set()
        thread.join(timeout=60)
    # The audit's own work, without the wait for the next poll: one pass that finds
    # the move and reverts it, and one pass over the verified alias (every poll's cost).
    revert_s, clean_s = [], []
    for _ in range(repeats):
        client.set_registered_model_alias(name, "staging", rogue)
        t = time.perf_counter()
        (f,) = audit_model(name, revert=True)
        revert_s.append(time.perf_counter() - t)
        assert f.reverted_to == good, f
        t = time.perf_counter()
        (f,) = audit_model(name)
        clean_s.append(time.perf_counter() - t)
        assert f.verified, f
    reverts = [e for e in history_read.events(name) if e.event == "revert"]
    assert len(reverts) == 2 * repeats and all(e.signature for e in reverts)
    return {
        "interval_s": interval_s,
        "repeats": repeats,
        "samples_s": times,
        "median_s": med(times),
        "revert_pass_s": med(revert_s),
        "clean_pass_s": med(clean_s),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--repeats-124m", type=int, help="repeats for gpt2-124m (default: --repeats)")
    ap.add_argument("--audit-repeats", type=int, default=10, help="out-of-band moves to time")
    ap.add_argument("--sizes", default=",".join(SIZES), help="comma-separated: small,gpt2-124m")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = set(sizes) - set(SIZES)
    if unknown:
        ap.error(f"unknown size(s) {sorted(unknown)}; choose from {SIZES}")

    work = Path(tempfile.mkdtemp(prefix="lmops-bench-signing-"))
    home = work / ".lmops"
    home.mkdir()
    uri = f"sqlite:///{work / 'mlflow.db'}"
    os.environ.update(
        LMOPS_HOME=str(home),
        MLFLOW_TRACKING_URI=uri,
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    for var in (
        "LMOPS_SIGNING_KEY",
        "LMOPS_PROMOTION_KEY",
        "LMOPS_TRUST_FILE",
        "LMOPS_PROMOTION_IDENTITY",
    ):
        os.environ.pop(var, None)
    import logging

    import mlflow
    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("lmops.audit").setLevel(logging.ERROR)  # each revert logs a warning
    mlflow.set_tracking_uri(uri)
    t0 = time.perf_counter()
    results: dict = {
        "machine": {
            "cpu_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "mlflow": mlflow.__version__,
        },
        "sizes": {},
    }
    try:
        for size in sizes:
            n = args.repeats_124m if size == "gpt2-124m" and args.repeats_124m else args.repeats
            results["sizes"][size] = bench_size(size, n, work)
            if size == "small":
                results["audit"] = bench_audit(args.audit_repeats)
        if "small" not in sizes:
            print("(the audit needs the small model: run with --sizes including small)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["total_s"] = time.perf_counter() - t0
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")


def report(results: dict) -> None:
    m = results["machine"]
    print(
        f"\n{m['cpu_cores']} CPU cores ({m['torch_threads']} torch threads), "
        f"{'a GPU' if m['cuda'] else 'no GPU'}; local SQLite store and artifacts; medians"
    )
    rows = [
        ("sign (sign_version)", "sign"),
        ("verify at promotion (verify_version)", "verify_version"),
        ("serving check (verified_download)", "serving_check"),
        ("  checks before the download", "checks"),
        ("  hash+verify of the downloaded files", "hash_verify"),
        ("download alone (no check)", "download"),
        ("load for serving (load_for_eval)", "load"),
        ("load + first forward pass", "ready"),
        ("model-signing hash only, SHA-256", "sha256_only"),
        ("model-signing hash only, BLAKE3 (used)", "blake3_only"),
        ("serve: download + load, no check", "serve_plain"),
        ("serve: load_verified (as lmops serve)", "serve_verified"),
    ]
    sizes = results["sizes"]
    print(f"{'':42}" + "".join(f"{s:>14}" for s in sizes))
    runs = list(sizes.values())
    print(f"{'parameters':42}" + "".join(f"{r['parameters'] / 1e6:>12.1f} M" for r in runs))
    print(f"{'files':42}" + "".join(f"{r['files_bytes'] / 1e6:>11.1f} MB" for r in runs))
    print(f"{'repeats':42}" + "".join(f"{r['repeats']:>14}" for r in sizes.values()))
    for label, key in rows:
        print(f"{label:42}" + "".join(f"{r['median_s'][key]:>12.3f} s" for r in sizes.values()))
    pct = [
        ("verification (checks + hash), % of load", "verification_of_load"),
        ("  % of load + first forward", "verification_of_ready"),
        ("hash+verify alone, % of load", "hash_verify_of_load"),
        ("serving check, % of download + load", "serving_check_of_download_plus_load"),
        ("load_verified over unchecked load (median)", "serve_overhead"),
    ]
    for label, key in pct:
        print(f"{label:42}" + "".join(f"{r['pct'][key]:>12.1f} %" for r in sizes.values()))
    for size, r in sizes.items():
        for label, key in rows:
            xs = r["samples_s"].get(key)
            if xs and max(xs) > 2 * min(xs) and max(xs) - min(xs) > 0.05:
                print(
                    f"  spread: {size} {label.strip()}: {min(xs):.3f} to {max(xs):.3f} s "
                    f"over {len(xs)} repeats"
                )
    print("(target: verification at most 10% of load; the load maps the safetensors file, so")
    print(" it reads the weights from the page cache the download just filled)")
    if "gpt2-124m" in sizes and "small" in sizes:
        a, b = sizes["small"]["repeats"], sizes["gpt2-124m"]["repeats"]
        if a != b:
            print(f"(gpt2-124m: {b} repeats, small: {a}, to keep the run short)")
    if "audit" in results:
        a = results["audit"]
        print(
            f"out-of-band alias move -> audit revert (watch, polling every "
            f"{a['interval_s']:.0f} s): median {a['median_s']:.2f} s over {a['repeats']} moves "
            f"(min {min(a['samples_s']):.2f}, max {max(a['samples_s']):.2f})"
        )
        print(
            f"  the audit's work alone: a pass that reverts {a['revert_pass_s']:.2f} s, "
            f"a pass over the verified alias {a['clean_pass_s']:.2f} s (medians)"
        )
    print(f"total {results['total_s']:.0f} s; every output check passed")


if __name__ == "__main__":
    main()
