import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lmops.config import EvalConfig, PerplexityConfig
from lmops.errors import LmopsError
from lmops.evaluation.perplexity import PerplexityScorer, document_nll, lang_group
from lmops.evaluation.scorer import EvalData, EvalDoc
from lmops.models.presets import build_hf_config, build_model
from pipelines.run_config import load_run_config

TASK_DIR = Path(__file__).parent / "lm_eval_task"
CTX = 64  # the tiny_lm fixture's max_position_embeddings


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def _token_logprob(model, context: list[int], target: int) -> float:
    logits = model(input_ids=torch.tensor([context])).logits[0, -1].float()
    return float(torch.log_softmax(logits, -1)[target])


def _docs(bilingual_texts, n_en=3, n_zh=3, chars=None):
    en = [r for r in bilingual_texts if r["lang"] == "en"][:n_en]
    zh = [r for r in bilingual_texts if r["lang"] == "zh"][:n_zh]
    return [EvalDoc(r["text"][:chars], r["lang"], r["id"]) for r in en + zh]


def _score(model, tok, docs, batch_size=4, **ppl):
    cfg = EvalConfig(batch_size=batch_size, perplexity=PerplexityConfig(**ppl))
    return PerplexityScorer.from_config(cfg).score(model, tok, EvalData("t", tuple(docs)))


def test_short_document_matches_one_forward_pass(tiny_lm, bilingual_texts):
    model, tok = tiny_lm
    ids = _ids(tok, bilingual_texts[0]["text"][:20])
    assert 1 < len(ids) < CTX
    seq = [tok.bos_token_id, *ids]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([seq])).logits[0].float(), -1)
    expected = -sum(float(logp[i, seq[i + 1]]) for i in range(len(ids)))
    nll, n = document_nll(model, ids, CTX, CTX, tok.bos_token_id)
    assert n == len(ids)  # the first real token is predicted from the prefix
    assert nll == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("stride", [CTX, 16])
def test_long_document_scores_each_token_once_with_its_window_context(
    tiny_lm, bilingual_texts, stride
):
    model, tok = tiny_lm
    ids = _ids(tok, next(r["text"] for r in bilingual_texts if r["lang"] == "en"))
    assert len(ids) > 3 * CTX
    seq = [tok.bos_token_id, *ids]
    # Token j is scored by the first window ending after it (ends CTX, CTX + stride, ...,
    # len(ids)), with that window's inputs before it as context: one forward pass per token.
    ends = list(range(CTX, len(ids), stride)) + [len(ids)]
    expected = 0.0
    for j in range(len(ids)):
        end = next(e for e in ends if e > j)
        expected -= _token_logprob(model, seq[max(0, end - CTX) : j + 1], seq[j + 1])
    nll, n = document_nll(model, ids, CTX, stride, tok.bos_token_id)
    assert n == len(ids)
    assert nll == pytest.approx(expected, rel=1e-5)


def test_untrained_model_is_near_uniform_and_counts_every_token():
    cfg = load_run_config("tiny").model
    torch.manual_seed(0)
    model = build_model(build_hf_config(cfg, vocab_size=300, bos_id=0, eos_id=0, pad_id=1))
    ids = np.random.default_rng(0).integers(2, 300, size=500).tolist()
    nll, n = document_nll(model, ids, max_len=64, stride=32, prefix_id=0)
    assert n == 500
    assert 150 < math.exp(nll / n) < 600  # a random init is close to uniform (300)


def test_scorer_aggregates_documents_and_languages(tiny_lm, bilingual_texts):
    model, tok = tiny_lm
    docs = _docs(bilingual_texts)
    # Language tags as sources write them: all of these are Chinese.
    docs[3:] = [
        EvalDoc(d.text, lang, d.doc_hash)
        for d, lang in zip(docs[3:], ["zh", "zh-Hans", "cmn"], strict=True)
    ]
    out = _score(model, tok, docs, batch_size=4, stride=32)
    per_doc = [document_nll(model, _ids(tok, d.text), CTX, 32, tok.bos_token_id) for d in docs]

    def expect(sel):
        nll = sum(per_doc[i][0] for i in sel)
        tokens = sum(per_doc[i][1] for i in sel)
        n_bytes = sum(len(docs[i].text.encode("utf-8")) for i in sel)
        return nll / tokens, nll / math.log(2) / n_bytes, tokens

    m = out.metrics
    for sfx, sel in [("", range(6)), ("_en", range(3)), ("_zh", range(3, 6))]:
        mean, bpb, tokens = expect(sel)
        assert m[f"eval/nll{sfx}"] == pytest.approx(mean, rel=1e-5)
        assert m[f"eval/perplexity{sfx}"] == pytest.approx(math.exp(mean), rel=1e-5)
        assert m[f"eval/bits_per_byte{sfx}"] == pytest.approx(bpb, rel=1e-6)
        assert m[f"eval/tokens_scored{sfx}"] == tokens
        assert m[f"eval/docs_scored{sfx}"] == len(sel)
    assert len(m) == 15
    rows = {r["lang"]: r for r in out.tables["eval_perplexity_by_lang"]}
    assert set(rows) == {"en", "zh"}
    assert rows["zh"]["docs"] == 3 and rows["zh"]["tokens"] == m["eval/tokens_scored_zh"]
    assert rows["en"]["bits_per_byte"] == m["eval/bits_per_byte_en"]
    json.dumps(out.tables)  # JSON-simple rows

    # Padding and batching do not change the numbers.
    one = _score(model, tok, docs, batch_size=1, stride=32).metrics
    assert one["eval/nll"] == pytest.approx(m["eval/nll"], rel=1e-6)


def test_scorer_stops_at_max_docs_and_max_tokens(tiny_lm, bilingual_texts):
    model, tok = tiny_lm
    docs = _docs(bilingual_texts, n_en=5, n_zh=5)
    assert _score(model, tok, docs, max_docs=2).metrics["eval/docs_scored"] == 2
    lengths = [len(_ids(tok, d.text)) for d in docs]
    budget = lengths[0] + 1  # the config's floor is 100 tokens
    assert budget >= 100
    # Whole documents until the budget is reached: the second one crosses it.
    m = _score(model, tok, docs, max_tokens=budget).metrics
    assert m["eval/docs_scored"] == 2 and m["eval/tokens_scored"] == lengths[0] + lengths[1]


def test_user_errors_are_clear(tiny_lm):
    model, tok = tiny_lm
    with pytest.raises(LmopsError, match="longer than the model's context"):
        _score(model, tok, [EvalDoc("hello", "en")], max_len=CTX + 1)
    with pytest.raises(LmopsError, match="no held-out document has text"):
        _score(model, tok, [EvalDoc("", "en")])


def test_lang_group():
    assert [lang_group(x) for x in ["zh-Hans", "zh_TW", "cmn", "EN-us", "", None]] == [
        *["zh", "zh", "zh", "en", "und", "und"]
    ]


def test_bits_per_byte_matches_lm_evaluation_harness(
    tiny_lm, bilingual_texts, tmp_path, monkeypatch
):
    """The same model and documents through lm-eval's rolling loglikelihood (offline)."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    model, tok = tiny_lm
    # Short documents fit one window; long ones need several (disjoint when stride == max_len).
    docs = _docs(bilingual_texts, chars=20) + _docs(bilingual_texts, n_en=2, n_zh=2)
    assert sum(len(_ids(tok, d.text)) < CTX for d in docs) == 6
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    shutil.copytree(TASK_DIR, tmp_path / "tasks")
    # The task's data_files and cache_dir are relative: run from the temp folder.
    (tmp_path / "docs.jsonl").write_text(
        "".join(json.dumps({"text": d.text}, ensure_ascii=False) + "\n" for d in docs),
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    out = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(folder), "device": "cpu", "dtype": "float32"},
        tasks=["lmops_heldout"],
        task_manager=TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False),
        batch_size=8,
        bootstrap_iters=0,
        random_seed=None,
        numpy_random_seed=None,
        torch_random_seed=None,
    )
    theirs = {s["doc_id"]: -float(s["resps"][0][0]) for s in out["samples"]["lmops_heldout"]}
    ours = _score(model, tok, docs, stride=CTX).metrics
    for i, d in enumerate(docs):
        nll, _ = document_nll(model, _ids(tok, d.text), CTX, CTX, tok.bos_token_id)
        assert nll == pytest.approx(theirs[i], rel=1e-6), d.text[:20]
    bpb = out["results"]["lmops_heldout"]["bits_per_byte,none"]
    assert ours["eval/bits_per_byte"] == pytest.approx(bpb, rel=1e-6)
