"""Masked-token accuracy on a tiny BERT and WordPiece tokenizer made here."""

import copy

import pytest
import torch

from lmops.config import EvalConfig, MLMConfig
from lmops.errors import LmopsError
from lmops.evaluation.mlm import MaskedAccuracyScorer, mask_documents
from lmops.evaluation.scorer import EvalData, EvalDoc


def _wordpiece(texts):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    # BertNormalizer splits Chinese characters into words of their own.
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        texts, trainers.WordPieceTrainer(vocab_size=1200, special_tokens=special)
    )
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(t, tok.token_to_id(t)) for t in special[2:4]]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )


@pytest.fixture(scope="module")
def tiny_mlm(bilingual_texts):
    """(untrained, trained, tokenizer): a 2-layer BERT trained for seconds on the corpus."""
    from transformers import BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling

    texts = [r["text"] for r in bilingual_texts]
    tok = _wordpiece(texts)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
    )
    untrained = BertForMaskedLM(cfg).eval()
    model = copy.deepcopy(untrained)
    enc = tok(texts, truncation=True, max_length=64, return_special_tokens_mask=True)
    rows = [dict(zip(enc.keys(), v, strict=True)) for v in zip(*enc.values(), strict=True)]
    # A different seed from the scorer's, so training never sees the evaluation masks.
    collate = DataCollatorForLanguageModeling(tok, mlm_probability=0.15, seed=123)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: a second thread only spins (see make_tiny_lm)
    try:
        for _ in range(100):
            idx = torch.randint(0, len(rows), (16,)).tolist()
            batch = collate([rows[i] for i in idx])
            loss = model(**batch).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return untrained, model.eval(), tok


def _docs(bilingual_texts, n=40):
    en = [r for r in bilingual_texts if r["lang"] == "en"][:n]
    zh = [r for r in bilingual_texts if r["lang"] == "zh"][:n]
    return tuple(EvalDoc(r["text"], r["lang"], r["id"]) for r in en + zh)


def _score(model, tok, docs, batch_size=8, **mlm):
    cfg = EvalConfig(batch_size=batch_size, mlm=MLMConfig(**mlm))
    return MaskedAccuracyScorer.from_config(cfg).score(model, tok, EvalData("t", docs))


def test_masks_are_seeded_and_follow_the_80_10_10_rule(tiny_mlm, bilingual_texts):
    _, _, tok = tiny_mlm
    texts = [d.text for d in _docs(bilingual_texts)]
    a = mask_documents(tok, texts, 0.15, seed=0, max_len=128)
    assert a == mask_documents(tok, texts, 0.15, seed=0, max_len=128)
    assert a != mask_documents(tok, texts, 0.15, seed=1, max_len=128)
    originals = tok(texts, truncation=True, max_length=128)["input_ids"]
    selected = to_mask = unchanged = candidates = 0
    for (inp, lab), orig in zip(a, originals, strict=True):
        assert len(inp) == len(orig) and lab[0] == lab[-1] == -100  # [CLS]/[SEP] never masked
        candidates += len(orig) - 2
        for x, y, o in zip(inp, lab, orig, strict=True):
            if y == -100:
                assert x == o  # unselected tokens are left alone
                continue
            assert y == o
            selected += 1
            to_mask += x == tok.mask_token_id
            unchanged += x == o
    assert selected / candidates == pytest.approx(0.15, abs=0.02)
    assert to_mask / selected == pytest.approx(0.8, abs=0.05)
    assert unchanged / selected == pytest.approx(0.1, abs=0.04)


@torch.no_grad()
def test_accuracy_matches_an_independent_count_on_the_same_masks(tiny_mlm, bilingual_texts):
    _, model, tok = tiny_mlm
    docs = _docs(bilingual_texts, n=10)
    out = _score(model, tok, docs, batch_size=8, seed=7)
    correct = total = 0
    loss = 0.0
    per_lang = {"en": [0, 0], "zh": [0, 0]}
    for doc, (ids, lab) in zip(
        docs, mask_documents(tok, [d.text for d in docs], 0.15, 7, 128), strict=True
    ):
        logits = model(input_ids=torch.tensor([ids])).logits[0]  # one document, no padding
        for pos, y in enumerate(lab):
            if y != -100:
                hit = int(logits[pos].argmax()) == y
                correct += hit
                total += 1
                loss -= float(torch.log_softmax(logits[pos], -1)[y])
                per_lang[doc.lang][0] += hit
                per_lang[doc.lang][1] += 1
    m = out.metrics
    assert m["eval/masked_tokens"] == total
    assert m["eval/masked_accuracy"] == pytest.approx(correct / total, abs=1e-12)
    assert m["eval/mlm_loss"] == pytest.approx(loss / total, rel=1e-4)
    for lang, (c, n) in per_lang.items():
        assert m[f"eval/masked_accuracy_{lang}"] == pytest.approx(c / n, abs=1e-12)
    rows = {r["lang"]: r for r in out.tables["eval_masked_accuracy_by_lang"]}
    assert rows["zh"]["masked_tokens"] == per_lang["zh"][1] and rows["en"]["docs"] == 10
    # Masks are drawn per document, so the batch size changes nothing.
    assert _score(model, tok, docs, batch_size=1, seed=7).metrics == m


def test_trained_model_beats_untrained(tiny_mlm, bilingual_texts):
    untrained, trained, tok = tiny_mlm
    docs = _docs(bilingual_texts)
    before = _score(untrained, tok, docs).metrics
    after = _score(trained, tok, docs).metrics
    assert before["eval/masked_accuracy"] < 0.02  # about 1 / vocabulary
    # 100 steps teach this model the most frequent tokens (about 9 % here), not context yet.
    assert after["eval/masked_accuracy"] > before["eval/masked_accuracy"] + 0.05
    assert after["eval/mlm_loss"] < before["eval/mlm_loss"]


def test_tokenizer_without_mask_token_is_a_clear_error(tiny_lm):
    model, tok = tiny_lm  # a causal LM's byte-level BPE has no mask token
    with pytest.raises(LmopsError, match="mask token"):
        _score(model, tok, (EvalDoc("hello world", "en"),))
