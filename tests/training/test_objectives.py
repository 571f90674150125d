"""The objectives' batches: SFT labels cover the response only and the loss ignores the
prompt; fine-tuning records keep their prompt/response boundary through the data
standard; MLM masks follow the 80/10/10 rule, spare special tokens and repeat per key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmops.config import ModelConfig, TokenizerConfig
from lmops.config.objectives import MLMConfig, SFTConfig
from lmops.data.standard.records import check_schema, normalise
from lmops.models.presets import build_hf_config, build_model
from lmops.tokenizer import train_tokenizer
from lmops.training.objectives.mlm import MaskedLM, add_mask_token
from lmops.training.objectives.sft import IGNORE, SupervisedFineTuning, encode, split_record

TEXTS = ["What is two plus two? Four. The answer is four, said the model."] * 40 + [
    "数据标准是什么？数据标准是一组规则，规定数据应当满足的格式与质量。"
] * 40


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, TokenizerConfig(vocab_size=400, min_frequency=1))


def test_sft_labels_cover_the_response_and_the_loss_ignores_the_prompt(tok):
    ids, labels = encode(tok, "What is two plus two?", "Four.", seq_len=64)
    trained = [i for i, lab in zip(ids, labels, strict=True) if lab != IGNORE]
    ignored = [i for i, lab in zip(ids, labels, strict=True) if lab == IGNORE]
    assert tok.decode(trained) == " Four.<|endoftext|>"  # the answer and the stop token
    assert tok.decode(ignored) == "user: What is two plus two?\nassistant:\n"

    rows = np.full((2, 64), tok.pad_token_id, dtype=np.int32)
    labs = np.full((2, 64), IGNORE, dtype=np.int32)
    rows[0, : len(ids)], labs[0, : len(labels)] = ids, labels
    rows[1, : len(ids)], labs[1, : len(labels)] = ids, labels
    batch = SupervisedFineTuning(SFTConfig(), tok, 64).batch((rows, labs), [0, 1], 0, "cpu")
    assert batch["attention_mask"][0].sum() == len(ids)

    torch.manual_seed(0)
    hf = build_hf_config(ModelConfig(), len(tok), tok.eos_token_id, tok.eos_token_id, 1)
    model = build_model(hf).eval()
    with torch.no_grad():
        out = model(**batch)
    # The loss is the mean cross-entropy over response positions only (shifted by one):
    # counting the prompt tokens too would give a different number.
    logits, target = out.logits[:, :-1], batch["labels"][:, 1:]
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
    keep = target != IGNORE
    assert torch.allclose(out.loss, ce[keep].mean(), atol=1e-5)
    everything = batch["input_ids"][:, 1:]
    ce_all = torch.nn.functional.cross_entropy(logits.transpose(1, 2), everything, reduction="none")
    assert not torch.allclose(out.loss, ce_all[batch["attention_mask"][:, 1:].bool()].mean())


def test_a_fine_tuning_record_keeps_its_boundary_through_the_standard():
    payload = {"prompt": "Line one\u2028line two?", "response": "  Yes.\r\nIt is.  "}
    record, why = check_schema(payload, "sft.jsonl", 1)
    assert why is None
    prompt, response = split_record(normalise(record.text))
    assert prompt == "Line one\nline two?"  # a separator inside a field becomes a newline
    assert response == "  Yes.\nIt is."
    assert split_record("plain text\nwith lines") is None


def test_mlm_masks_follow_the_80_10_10_rule_and_repeat_for_a_key(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    mtok = type(tok).from_pretrained(tmp_path)
    add_mask_token(mtok)
    stream = np.array(mtok("\n".join(TEXTS) * 4)["input_ids"], dtype=np.uint16)
    stream[::50] = mtok.eos_token_id  # special tokens in the stream are never selected
    obj = MaskedLM(MLMConfig(), mtok, 64)
    rows = np.arange(obj.n_rows(stream))
    a = obj.batch(stream, rows, key=11, device="cpu")
    again = obj.batch(stream, rows, key=11, device="cpu")
    other = obj.batch(stream, rows, key=12, device="cpu")
    assert torch.equal(a["input_ids"], again["input_ids"])
    assert not torch.equal(a["input_ids"], other["input_ids"])

    original = obj.blocks(stream, rows, "cpu")
    selected = a["labels"] != IGNORE
    special = original == mtok.eos_token_id
    assert not (selected & special).any()
    assert torch.equal(a["labels"][selected], original[selected])
    share = selected.sum().item() / (~special).sum().item()
    masked = (a["input_ids"] == mtok.mask_token_id) & selected
    kept = (a["input_ids"] == original) & selected
    n = selected.sum().item()
    assert abs(share - 0.15) < 0.02, share
    assert abs(masked.sum().item() / n - 0.8) < 0.04
    # 10 % random tokens, a few of which happen to equal the original: kept is >= 10 %.
    assert abs(kept.sum().item() / n - 0.1) < 0.04
    assert not (a["input_ids"][~selected] != original[~selected]).any()
