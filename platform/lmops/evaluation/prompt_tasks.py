"""Prompt tasks: candidate templates from the prompt registry, scored with ROUGE on a dev set.

Each candidate of ``PromptTaskConfig.task`` (see :mod:`lmops.evaluation.prompts`) is
filled with the first ``max_examples`` dev examples of every language in the shipped
dev set and greedily continued; the completion's first line is the summary, scored
against the reference with ROUGE-1/2/L (F-measure). Every candidate, whatever its own
language, gets the examples of all languages, so all are ranked on the same examples;
the ``rougeL_<lang>`` columns of ``eval_prompt_selection`` show which languages a
template suits. On a model with a known context length the summary gets at most half
of it and the passage's tail is cut so that the prompt fits the rest.

* ``eval/rouge1``, ``eval/rouge2``, ``eval/rougeL``: means of the best candidate.
* ``eval/rougeL_<version>``: mean ROUGE-L of each candidate version.
* ``eval/prompt_best_version``: the best version (ties go to the older one).

With ``select`` the alias is moved to the best version. The alias is global to the
prompt, not per model: it names the template best for the model evaluated most
recently. The chosen version is tagged ``lmops.selected_for_model`` with the model's
``config.name_or_path`` when that is set.
"""

from __future__ import annotations

import json
import re
import unicodedata
from importlib import resources

import numpy as np
from rouge_score import rouge_scorer

from lmops.config import DecodingConfig, PromptTaskConfig
from lmops.errors import LmopsError
from lmops.evaluation import prompts
from lmops.evaluation.decoding import generate_batch
from lmops.evaluation.scorer import EvalData, Scorer, ScoreResult

DEV_SETS = {"summarize": "summarize_dev.jsonl"}
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


class CjkTokenizer:
    """ROUGE tokens: each CJK character on its own, ASCII letters/digits as words.

    rouge-score's default tokenizer keeps only ``[a-z0-9]+``, so every Chinese string
    becomes zero tokens and scores 0. Chinese has no spaces between words, and word
    segmentation would make the score depend on a segmenter; characters are the
    usual unit for Chinese ROUGE. NFKC first, so full-width letters and digits count
    as ASCII.
    """

    _TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[a-z0-9]+")

    def tokenize(self, text: str) -> list[str]:
        return self._TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def load_dev_set(task: str) -> list[dict]:
    if task not in DEV_SETS:
        raise LmopsError(f"no dev set for prompt task '{task}'; known: {sorted(DEV_SETS)}")
    text = resources.files("lmops.evaluation").joinpath("data", DEV_SETS[task]).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def pick_examples(rows: list[dict], per_lang: int) -> list[dict]:
    """The first ``per_lang`` rows of each language, languages in sorted order."""
    out = []
    for lang in sorted({r["lang"] for r in rows}):
        out.extend([r for r in rows if r["lang"] == lang][:per_lang])
    return out


def summary_of(completion: str) -> str:
    """The completion up to its first line break: the one-line summary the template asks for."""
    return completion.lstrip().split("\n", 1)[0].strip()


def _context_length(model) -> int | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)


def _clip(tokenizer, text: str, n_tokens: int) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= n_tokens:
        return text
    # A cut inside a multi-byte character decodes to U+FFFD; drop it.
    return tokenizer.decode(ids[:n_tokens]).rstrip("\ufffd")


def _fit(tokenizer, template, text: str, limit: int | None) -> str:
    """``template`` filled with ``text``, the passage's tail cut so the prompt fits ``limit``."""
    prompt = template.format(text=text)
    budget = None  # passage tokens allowed; shrinks every round, so the loop ends
    while limit is not None:
        excess = len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) - limit
        if excess <= 0:
            break
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        budget = (n if budget is None else min(n, budget)) - excess
        if budget < 0:
            raise LmopsError(
                f"template version {template.version} alone exceeds the model's context; "
                "lower eval.prompt_tasks.max_new_tokens"
            )
        text = _clip(tokenizer, text, budget)
        prompt = template.format(text=text)
    return prompt


class PromptTaskScorer(Scorer):
    name = "prompt_tasks"
    kinds = frozenset({"causal"})

    def __init__(self, cfg: PromptTaskConfig, batch_size: int = 16):
        self.cfg = cfg
        self.batch_size = batch_size

    @classmethod
    def from_config(cls, cfg) -> PromptTaskScorer:
        return cls(cfg.prompt_tasks, cfg.batch_size)

    def score(self, model, tokenizer, data: EvalData) -> ScoreResult:
        cfg = self.cfg
        examples = pick_examples(load_dev_set(cfg.task), cfg.max_examples)
        versions = [
            prompts.load_version(cfg.prompt_name, v.version)
            for v in prompts.register_candidates(cfg.prompt_name, cfg.task)
        ]
        new_tokens, limit = cfg.max_new_tokens, None
        ctx = _context_length(model)
        if ctx:
            # Half the context at most for the summary; the passage's tail is cut so
            # prompt + summary fit a model with learned positions (GPT-2) at all.
            new_tokens = min(new_tokens, ctx // 2)
            limit = ctx - new_tokens
        cases = [(v, ex) for v in versions for ex in examples]
        gens = generate_batch(
            model,
            tokenizer,
            [_fit(tokenizer, v, ex["text"], limit) for v, ex in cases],
            DecodingConfig(),
            batch_size=self.batch_size,
            max_new_tokens=new_tokens,
        )
        rouge = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=CjkTokenizer())
        rows = []
        for (v, ex), gen in zip(cases, gens, strict=True):
            summary = summary_of(gen.completion)
            s = rouge.score(ex["summary"], summary)
            rows.append(
                {
                    "version": int(v.version),
                    "template": v.template,
                    "lang": ex["lang"],
                    "id": ex["id"],
                    "completion": gen.completion,
                    "summary": summary,
                    "reference": ex["summary"],
                    **{t: float(s[t].fmeasure) for t in ROUGE_TYPES},
                }
            )
        return self._result(rows, versions, examples, model)

    def _result(self, rows, versions, examples, model) -> ScoreResult:
        cfg = self.cfg
        langs = sorted({ex["lang"] for ex in examples})

        def mean(version: int, key: str, lang: str | None = None) -> float:
            vals = [
                r[key]
                for r in rows
                if r["version"] == version and (lang is None or r["lang"] == lang)
            ]
            return float(np.mean(vals))

        scores = {int(v.version): mean(int(v.version), "rougeL") for v in versions}
        best = prompts.select_best(scores)
        if cfg.select:
            model_id = getattr(getattr(model, "config", None), "name_or_path", None) or None
            prompts.move_alias(cfg.prompt_name, cfg.alias, best, model_id)
        metrics = {f"eval/{t}": mean(best, t) for t in ROUGE_TYPES}
        metrics.update({f"eval/rougeL_{v}": s for v, s in scores.items()})
        metrics["eval/prompt_best_version"] = float(best)
        selection = [
            {
                "version": int(v.version),
                "template": v.template,
                "template_lang": v.tags.get(prompts.LANG_TAG, ""),
                "rougeL": scores[int(v.version)],
                **{f"rougeL_{lang}": mean(int(v.version), "rougeL", lang) for lang in langs},
                "selected": int(v.version) == best,
                "alias": cfg.alias if cfg.select and int(v.version) == best else "",
            }
            for v in versions
        ]
        return ScoreResult(metrics, {"eval_prompt_tasks": rows, "eval_prompt_selection": selection})
