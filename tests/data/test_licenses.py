"""Record licences of a dataset version and the model card licence derived from them."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmops.data.licenses import card_license, license_counts, license_note
from lmops.data.standard.schema import ACCEPTED_SCHEMA


def write_shard(path, licenses):
    rows = [
        {"id": f"d{i}", "text": "t", "source": "s", "lang": "en", "license": lic, "meta": "{}"}
        for i, lic in enumerate(licenses)
    ]
    rows = [{**r, "doc_hash": f"h{i}"} for i, r in enumerate(rows)]
    pq.write_table(pa.Table.from_pylist(rows, schema=ACCEPTED_SCHEMA), path)


def test_counts_come_from_the_listed_shards_with_blank_as_unknown(tmp_path):
    write_shard(tmp_path / "part-00000.parquet", ["CC-BY-4.0"] * 3 + ["", None])
    write_shard(tmp_path / "part-00001.parquet", ["MIT", "CC-BY-4.0", "  "])
    write_shard(tmp_path / "stray.parquet", ["GPL-3.0"] * 9)  # not in the manifest
    manifest = {"shards": ["part-00000.parquet", "part-00001.parquet"]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    counts = license_counts(tmp_path)
    assert counts == {"CC-BY-4.0": 4, "unknown": 3, "MIT": 1}
    assert list(counts) == ["CC-BY-4.0", "unknown", "MIT"]  # most common first


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"CC-BY-4.0": 10}, "cc-by-4.0"),
        ({"CC0-1.0": 2, "cc0-1.0": 1}, "cc0-1.0"),  # one licence in two spellings
        ({"Apache-2.0": 1}, "apache-2.0"),
        ({"MIT": 5}, "mit"),
        ({"CC-BY-SA-4.0": 5}, "cc-by-sa-4.0"),
        ({"GPL-3.0-only": 1}, "gpl-3.0"),
        ({"PSF-2.0": 7}, "other"),  # no Hugging Face id
        ({"CC-BY-4.0": 3, "MIT": 1}, "other"),
        ({"CC-BY-4.0": 3, "unknown": 1}, "other"),
        ({"unknown": 4}, "unknown"),
        ({}, "unknown"),
        ({"MIT": 0, "CC-BY-4.0": 2}, "cc-by-4.0"),  # zero counts do not count
    ],
)
def test_card_license(counts, expected):
    assert card_license(counts) == expected


def test_note_states_the_breakdown_and_unlicensed_documents():
    mixed = license_note({"CC-BY-4.0": 3, "MIT": 2, "unknown": 1})
    assert "6 documents carry 2 licences (CC-BY-4.0, MIT)" in mixed and "`other`" in mixed
    assert "1 of them states no licence" in mixed
    single = license_note({"CC-BY-4.0": 5})
    assert single == "All 5 documents are licensed CC-BY-4.0, so the card says `cc-by-4.0`."
    assert "PSF-2.0 has no Hugging Face licence id" in license_note({"PSF-2.0": 2})
    assert "terms of use are unknown" in license_note({"": 2})
    assert "no accepted documents" in license_note({})
