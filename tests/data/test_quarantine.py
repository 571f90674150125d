"""Quarantine rows: PII redacted whatever the reason, and a retried stage adds no row twice."""

import json
from collections import Counter

import pyarrow.parquet as pq
from corpus_factory import good_doc, write_jsonl

from lmops.config import DataConfig
from lmops.data.ingest import ingest
from lmops.data.quarantine import HEAD_CHARS, redacted_preview
from lmops.text.pii import find_pii

CFG = DataConfig(quality_overrides={"zh": {"min_chars": 100}})
EMAIL, PHONE, CN_ID = "zhang.wei@example.cn", "+86 138 1234 5678", "11010519491231002X"
PII = (EMAIL, PHONE, CN_ID, "13812345678", "zhang.wei")


def rows_of(folder, pattern):
    return pq.read_table(sorted(folder.glob(pattern))).to_pylist()


def with_pii(doc: dict, extra: str = f" Write to {EMAIL} or call {PHONE}.") -> dict:
    return dict(doc, text=doc["text"] + extra)


def long_line_with_email_at_the_cut(cut: int, prefix: str = "") -> str:
    """A malformed line whose preview (cut at ``cut``) ends inside the e-mail address."""
    head = '{"id": "cut", "text": "' + prefix
    filler = ("word " * cut)[: cut - len(head) - len(EMAIL)] + " "
    return head + filler + EMAIL + ' and more text"'


def test_quarantined_records_are_redacted_whatever_the_reason(tmp_path):
    dup = with_pii(good_doc(900))
    bad = [
        f'{{"id": "p1", "text": "mail {EMAIL} or {PHONE}',  # parse error
        {"id": "s1", "text": 42, "source": f"ID {CN_ID}, mail {EMAIL}"},  # schema error
        {"id": "t1", "text": "Call 13812345678"},  # too short
        {"id": "q1", "text": "\n".join([good_doc(903)["text"]] * 5) + f"\nContact {EMAIL}."},
        with_pii(good_doc(901), " " + " ".join(f"user{i}@example.com" for i in range(6))),
        dup,
        dict(dup, id="dup-copy"),  # exact duplicate
        dict(with_pii(good_doc(902)), id="good-1"),  # duplicate id
        long_line_with_email_at_the_cut(2000),  # reader's preview cut inside the address
    ]
    rows = [good_doc(i) for i in range(30)] + bad
    rep = ingest([write_jsonl(tmp_path / "in.jsonl", rows)], CFG, tmp_path / "ds")
    q = {r["line"] - 30: r for r in rows_of(rep.path, "quarantine-*.parquet")}
    rules = {line: r["rule"] for line, r in q.items()}
    assert rules[1] == "parse:malformed_json" and rules[9] == "parse:malformed_json"
    assert rules[2].startswith("schema:bad_type") and rules[8] == "schema:duplicate_id"
    assert rules[3] == "quality:too_short" and rules[4].startswith("quality:")
    assert rules[4] != "quality:too_short" and rules[5] == "pii:too_many"
    assert rules[7] == "dedup:exact" and 6 not in rules
    for line, r in q.items():
        assert not [v for v in PII if v in r["record"]], (line, r["record"])
        assert not find_pii(r["record"]), (line, r["record"])
        assert r["pii_hits"] >= 1 or line == 9, (line, r)  # 9 holds only a cut address
    assert q[5]["pii_hits"] >= 6 and q[2]["pii_hits"] == 2
    assert "<EMAIL>" in q[1]["record"] and "<PHONE>" in q[3]["record"]
    assert "<CN_ID>" in q[2]["record"] and json.loads(q[7]["record"])["id"] == "dup-copy"


def test_a_preview_cut_inside_an_address_keeps_no_part_of_it():
    # 60 ID numbers redact to 660 characters fewer: the cut lands inside the preview.
    record = long_line_with_email_at_the_cut(HEAD_CHARS, prefix=f"{CN_ID} " * 60)
    assert EMAIL[:-1] in record[:HEAD_CHARS] and EMAIL not in record[:HEAD_CHARS]
    preview, hits = redacted_preview(record)
    assert "zhang" not in preview and hits == 60 and preview.count("<CN_ID>") == 60
    words = "word " * 60
    assert redacted_preview(f"{words}{EMAIL} {words}") == (f"{words}<EMAIL> {words}", 1)


class RetriedStages:
    """``run_stage`` that fails ``read`` and ``decide`` once, mid-stage, with a transient
    IO error after each wrote part of its output, then retries them as Prefect does."""

    def __init__(self):
        self.attempts: Counter = Counter()

    def __call__(self, name, fn, *args):
        self.attempts[name] += 1
        try:
            return fn(*self.first_attempt(name, args))
        except OSError:
            self.check_partial_output(name, args)
            self.attempts[name] += 1
            return fn(*args)

    def first_attempt(self, name, args):
        if name == "read":  # fails at the 3000th record, 2000 candidates on disk
            src, cfg, std, staged, _ = args

            def fail_at_3000(n):
                if n == 3000:
                    raise ConnectionResetError("transient: the source went away")

            return src, cfg, std, staged, fail_at_3000
        if name == "decide":  # fails writing the signatures, after shards and quarantine
            (args[0].path / "minhash_sigs.npy").mkdir()
        return args

    def check_partial_output(self, name, args):
        staged = args[3] if name == "read" else args[0]
        if name == "read":
            # The first 2000 candidates are written (a file still open: no footer yet).
            assert (staged.path / "candidates-00000.parquet").stat().st_size > 10_000
        else:
            assert list(staged.path.glob("part-*.parquet"))
            assert list(staged.path.glob("quarantine-3-decide-*.parquet"))
            (staged.path / "minhash_sigs.npy").rmdir()  # the transient cause is gone


def test_a_retried_stage_adds_no_row_twice(tmp_path):
    docs = [good_doc(i) for i in range(3200)]
    copies = [dict(d, id=f"copy-{i}") for i, d in enumerate(docs[:7])]
    shorts = [{"id": f"short-{i}", "text": "too short"} for i in range(4)]
    rows = ['{"broken'] * 5 + docs[:3000] + copies + shorts + docs[3000:]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    stages = RetriedStages()
    rep = ingest([src], CFG, tmp_path / "ds", data_docs=False, run_stage=stages)
    assert stages.attempts["read"] == 2 and stages.attempts["decide"] == 2
    assert rep.balanced and rep.input == len(rows) == 3216
    q = rows_of(rep.path, "quarantine-*.parquet")
    keys = Counter((r["source_file"], r["line"]) for r in q)
    assert len(q) == rep.quarantined == 16 and max(keys.values()) == 1
    assert rep.reasons == {"parse:malformed_json": 5, "dedup:exact": 7, "quality:too_short": 4}
    accepted = rows_of(rep.path, "part-*.parquet")
    assert len(accepted) == rep.accepted == 3200 == len({r["id"] for r in accepted})
