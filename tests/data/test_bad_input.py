"""Bad input: each kind ends as a quarantine row with a reason, or a clear error that
names the file (and line), and the accounting ``input = accepted + quarantined`` holds."""

import gzip
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from corpus_factory import good_doc, write_jsonl

from lmops.config import DataConfig
from lmops.data.ingest import ingest
from lmops.errors import SourceError

CFG = DataConfig(quality_overrides={"zh": {"min_chars": 100}})
GOOD = 30


def run(tmp_path, *extra):
    good = write_jsonl(tmp_path / "good.jsonl", [good_doc(i) for i in range(GOOD)])
    rep = ingest([good, *map(str, extra)], CFG, tmp_path / "ds")
    assert rep.balanced, rep.accounting_line()
    q = pq.read_table(sorted(rep.path.glob("quarantine-*.parquet"))).to_pylist()
    assert len(q) == rep.quarantined
    return rep, q


def reasons_of(q, filename):
    return [r["reason"] for r in q if r["source_file"].endswith(filename)]


def write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def test_malformed_json_line(tmp_path):
    bad = write_bytes(tmp_path / "b.jsonl", b'{"id": "a", "text": \n')
    rep, q = run(tmp_path, bad)
    assert reasons_of(q, "b.jsonl")[0].startswith("parse:malformed_json")
    assert [r["line"] for r in q if r["source_file"].endswith("b.jsonl")] == [1]


def test_invalid_utf8(tmp_path):
    bad = write_bytes(tmp_path / "b.jsonl", b'{"id": "a", "text": "caf\xe9 \xff\xfe ok"}\n')
    _, q = run(tmp_path, bad)
    assert reasons_of(q, "b.jsonl") == ["parse:encoding:invalid_utf8"]


def test_gbk_encoded_chinese(tmp_path):
    line = json.dumps({"id": "g", "text": "数据标准让每一条记录都有来源"}, ensure_ascii=False)
    bad = write_bytes(tmp_path / "b.jsonl", line.encode("gbk") + b"\n")
    _, q = run(tmp_path, bad)
    assert reasons_of(q, "b.jsonl") == ["parse:encoding:gbk_not_utf8"]


def test_bom_is_stripped_and_record_kept(tmp_path):
    doc = good_doc(500)
    bad = write_bytes(tmp_path / "b.jsonl", b"\xef\xbb\xbf" + json.dumps(doc).encode() + b"\n")
    rep, _ = run(tmp_path, bad)
    assert rep.accepted == GOOD + 1


def test_nul_bytes_in_a_line(tmp_path):
    bad = write_bytes(
        tmp_path / "b.jsonl", json.dumps(good_doc(501)).encode() + b"\n" + b'{"text": "a\x00b"}\n'
    )
    rep, q = run(tmp_path, bad)
    assert reasons_of(q, "b.jsonl") == ["parse:nul_bytes"] and rep.accepted == GOOD + 1


def test_empty_file_counts_nothing(tmp_path):
    bad = write_bytes(tmp_path / "b.jsonl", b"")
    rep, q = run(tmp_path, bad)
    assert rep.input == GOOD and not reasons_of(q, "b.jsonl")


def test_empty_and_whitespace_text(tmp_path):
    bad = write_jsonl(
        tmp_path / "b.jsonl", [{"id": "e1", "text": ""}, {"id": "e2", "text": " \n\t\u3000 "}]
    )
    _, q = run(tmp_path, bad)
    assert reasons_of(q, "b.jsonl") == ["quality:empty", "quality:empty"]


def test_50_mb_single_document(tmp_path):
    bad = tmp_path / "b.jsonl"
    bad.write_text(json.dumps({"id": "huge", "text": "word " * 10_000_000}) + "\n")
    assert bad.stat().st_size > 50_000_000
    _, q = run(tmp_path, bad)
    (reason,) = reasons_of(q, "b.jsonl")
    assert reason.startswith("quality:too_long:")


def test_missing_text_field(tmp_path):
    bad = write_jsonl(tmp_path / "b.jsonl", [{"id": "m", "source": "x"}])
    _, q = run(tmp_path, bad)
    assert reasons_of(q, "b.jsonl") == ["schema:missing:text"]


def test_non_string_text(tmp_path):
    bad = write_jsonl(
        tmp_path / "b.jsonl", [{"id": "n1", "text": 42}, {"id": "n2", "text": ["a", "list"]}]
    )
    _, q = run(tmp_path, bad)
    assert reasons_of(q, "b.jsonl") == ["schema:bad_type:text:int", "schema:bad_type:text:list"]


def test_duplicate_ids(tmp_path):
    bad = write_jsonl(tmp_path / "b.jsonl", [dict(good_doc(600), id="good-1")])
    _, q = run(tmp_path, bad)
    assert reasons_of(q, "b.jsonl") == ["schema:duplicate_id:good-1"]


def test_truncated_gzip(tmp_path):
    raw = gzip.compress(b"".join(json.dumps(good_doc(i)).encode() + b"\n" for i in range(700, 720)))
    bad = write_bytes(tmp_path / "b.jsonl.gz", raw[: len(raw) // 2])
    rep, q = run(tmp_path, bad)
    (reason,) = reasons_of(q, "b.jsonl.gz")
    assert reason.startswith("parse:truncated_stream")
    assert GOOD < rep.accepted < GOOD + 20  # what was readable before the cut is kept


def test_binary_file_named_jsonl(tmp_path):
    bad = write_bytes(tmp_path / "b.jsonl", bytes(range(256)) * 64)
    _, q = run(tmp_path, bad)
    assert reasons_of(q, "b.jsonl") == ["parse:binary_file"]


def test_path_that_does_not_exist(tmp_path):
    with pytest.raises(SourceError, match="nope.jsonl does not exist"):
        ingest([str(tmp_path / "nope.jsonl")], CFG, tmp_path / "ds")


def test_path_without_read_permission(tmp_path):
    """Root reads any file, so as root the check runs without the two DAC capabilities."""
    secret = write_jsonl(tmp_path / "secret.jsonl", [good_doc(1)])
    os.chmod(secret, 0o000)
    code = (
        "import sys; from pathlib import Path; from lmops.config import DataConfig;"
        "from lmops.data.ingest import ingest; from lmops.errors import SourceError\n"
        "try:\n ingest([sys.argv[1]], DataConfig(), Path(sys.argv[2]))\n"
        "except SourceError as e:\n print('ERR', e); sys.exit(3)"
    )
    drop = []
    if os.geteuid() == 0:
        caps = "-dac_override,-dac_read_search"
        drop = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
    proc = subprocess.run(
        [*drop, sys.executable, "-c", code, str(secret), str(tmp_path / "ds")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "secret.jsonl" in proc.stdout and "permission denied" in proc.stdout


def test_mixed_format_folder(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [good_doc(i) for i in range(800, 805)])
    (folder / "b.txt").write_text(good_doc(806)["text"] + "\n\n" + good_doc(807)["text"])
    pq.write_table(pa.Table.from_pylist([good_doc(808), good_doc(809)]), folder / "c.parquet")
    (folder / "d.csv").write_text("id,text\nc1," + good_doc(810)["text"] + "\n")
    (folder / "e.bin").write_bytes(b"\x00\x01")
    (folder / "f.json").write_text(json.dumps(good_doc(811)) + "\n")
    rep, q = run(tmp_path, folder)
    assert rep.accepted == GOOD + 11
    assert reasons_of(q, "e.bin") == ["parse:unknown_format:.bin"]


def test_very_long_line_without_newlines(tmp_path):
    bad = tmp_path / "b.txt"
    bad.write_text("token " * 400_000)  # 2.4 MB, one line, no newline
    _, q = run(tmp_path, bad)
    (reason,) = reasons_of(q, "b.txt")
    assert reason.startswith("quality:too_long:")


def test_json_line_that_is_not_an_object(tmp_path):
    bad = write_bytes(tmp_path / "b.jsonl", b'[1, 2, 3]\n"just a string"\n')
    _, q = run(tmp_path, bad)
    assert reasons_of(q, "b.jsonl") == ["parse:not_an_object", "parse:not_an_object"]


def test_unknown_field(tmp_path):
    bad = write_jsonl(tmp_path / "b.jsonl", [dict(good_doc(900), colour="red")])
    _, q = run(tmp_path, bad)
    assert reasons_of(q, "b.jsonl") == ["schema:unknown_field:colour"]


def test_csv_row_with_extra_columns(tmp_path):
    bad = tmp_path / "b.csv"
    bad.write_text("id,text\nx1," + good_doc(901)["text"] + ",surplus\n")
    _, q = run(tmp_path, bad)
    assert reasons_of(q, "b.csv") == ["parse:csv:extra_columns"]


def test_corrupt_parquet(tmp_path):
    bad = write_bytes(tmp_path / "b.parquet", b"PAR1 this is not parquet at all")
    _, q = run(tmp_path, bad)
    assert reasons_of(q, "b.parquet") == ["parse:bad_parquet"]


def test_finetune_record_missing_response(tmp_path):
    bad = write_jsonl(tmp_path / "b.jsonl", [{"id": "ft", "prompt": "Say hi"}])
    _, q = run(tmp_path, bad)
    assert reasons_of(q, "b.jsonl") == ["schema:missing:response"]


def test_control_characters_and_mojibake_are_repaired(tmp_path):
    doc = good_doc(902)
    doc["text"] = doc["text"].replace("The", "The\x07", 1) + " The cafÃ© closes at nine."
    rep, _ = run(tmp_path, write_jsonl(tmp_path / "b.jsonl", [doc]))
    table = pq.read_table(sorted(rep.path.glob("part-*.parquet"))).to_pylist()
    text = next(r["text"] for r in table if r["id"] == "good-902")
    assert "\x07" not in text and "café" in text


def test_other_language_and_toxic_and_pii_heavy(tmp_path):
    french = {
        "id": "fr",
        "text": "Le chat dort sur le canapé pendant que la pluie tombe "
        "doucement sur les toits de la ville, et personne ne veut sortir ce soir.",
    }
    toxic = dict(good_doc(903), id="tox")
    toxic["text"] += " You are a fucking idiot and a piece of shit."
    pii = dict(good_doc(904), id="pii")
    pii["text"] += " " + " ".join(f"user{i}@example.com" for i in range(6))
    _, q = run(tmp_path, write_jsonl(tmp_path / "b.jsonl", [french, toxic, pii]))
    got = reasons_of(q, "b.jsonl")
    assert got[0] == "lang:not_allowed:fr"
    assert got[1].startswith("toxicity:score:")
    assert got[2] == "pii:too_many:6"


def test_fsspec_url_source_and_compressed_jsonl(tmp_path):
    import zstandard

    raw = b"".join(json.dumps(good_doc(i)).encode() + b"\n" for i in range(950, 960))
    (tmp_path / "remote").mkdir()
    (tmp_path / "remote" / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    rep, _ = run(tmp_path, f"file://{tmp_path / 'remote'}")
    assert rep.accepted == GOOD + 10
