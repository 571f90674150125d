"""PII detection and redaction: boundaries in CJK text, checksums, overlaps."""

from __future__ import annotations

import pytest

from lmops.text.pii import KINDS, PiiHit, cn_id_ok, find_pii, luhn_ok, redact

_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_id(first17: str) -> str:
    """Append the ISO 7064 MOD 11-2 check character, computed independently here."""
    total = sum(int(c) * w for c, w in zip(first17, _CN_WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]


def kinds(text: str) -> list[tuple[str, str]]:
    return [(h.kind, h.value) for h in find_pii(text)]


def test_email_inside_cjk_text() -> None:
    text = "请联系邮箱zhangwei@example.cn获取资料"
    assert kinds(text) == [("email", "zhangwei@example.cn")]
    assert redact(text)[0] == "请联系邮箱<EMAIL>获取资料"


def test_email_in_english() -> None:
    text = "Write to jane.doe+news@mail.example.co.uk, or to nobody@localhost."
    assert kinds(text) == [("email", "jane.doe+news@mail.example.co.uk")]


def test_chinese_mobile_numbers() -> None:
    assert kinds("手机13812345678联系") == [("phone", "13812345678")]
    assert kinds("电话：+86 138 1234 5678。") == [("phone", "+86 138 1234 5678")]
    # Part of a longer digit run (a Luhn-invalid order number) or a non-mobile prefix.
    assert kinds("订单号213812345678991") == []
    assert kinds("编号12812345678") == []


def test_international_and_us_phones() -> None:
    text = "Call (415) 555-2671 or +44 20 7946 0958 today; the id 4155552671 is not one."
    assert kinds(text) == [("phone", "(415) 555-2671"), ("phone", "+44 20 7946 0958")]


def test_ipv4_private_and_public_with_octet_validation() -> None:
    text = "hosts 10.0.0.1, 192.168.1.20 and 8.8.8.8; not 999.1.1.1 nor version 1.2.3.4.5"
    assert kinds(text) == [("ipv4", "10.0.0.1"), ("ipv4", "192.168.1.20"), ("ipv4", "8.8.8.8")]


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112")


def test_credit_cards_are_luhn_checked() -> None:
    assert kinds("card 4111 1111 1111 1111 ok") == [("credit_card", "4111 1111 1111 1111")]
    assert kinds("卡号4111-1111-1111-1111。") == [("credit_card", "4111-1111-1111-1111")]
    assert kinds("amex 378282246310005") == [("credit_card", "378282246310005")]
    assert kinds("card 4111 1111 1111 1112 bad") == []
    assert kinds("zeros 0000000000000000") == []  # Luhn-valid placeholder


def test_cn_resident_id_checksum_and_birth_date() -> None:
    valid = cn_id("11010519491231002")
    assert valid.endswith("X")
    assert cn_id_ok(valid) and cn_id_ok(valid.lower())
    assert kinds(f"身份证号{valid}。") == [("cn_resident_id", valid)]

    wrong = valid[:-1] + ("0" if valid[-1] != "0" else "1")
    assert not cn_id_ok(wrong)
    assert all(k != "cn_resident_id" for k, _ in kinds(f"身份证号{wrong}。"))

    bad_date = cn_id("11010519490230002")  # 30 February
    assert not cn_id_ok(bad_date)
    assert kinds(f"号码{bad_date}") == []
    other = cn_id("44030420011015123")
    assert kinds(f"ID {other}") == [("cn_resident_id", other)]


def test_redact_replaces_everything_and_counts_every_kind() -> None:
    valid = cn_id("44030420011015123")
    text = (
        f"姓名张伟，邮箱zhangwei@example.cn，手机13812345678，身份证{valid}，"
        "IP 192.168.0.1, card 4111 1111 1111 1111."
    )
    out, counts = redact(text)
    assert out == ("姓名张伟，邮箱<EMAIL>，手机<PHONE>，身份证<CN_ID>，IP <IP>, card <CARD>.")
    assert list(counts) == list(KINDS)
    assert counts == {"email": 1, "cn_resident_id": 1, "credit_card": 1, "phone": 1, "ipv4": 1}


def test_no_pii_leaves_text_unchanged() -> None:
    text = "Nothing to see here: 3 apples, 12 pears and version 3.11."
    out, counts = redact(text)
    assert out == text
    assert set(counts.values()) == {0}


def test_hits_do_not_overlap_and_hide_the_value_in_repr() -> None:
    valid = cn_id("11010519491231002")
    hits = find_pii(f"{valid} x@y.org 8.8.8.8")
    spans = [(h.start, h.end) for h in hits]
    assert spans == sorted(spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert "x@y.org" not in repr(hits)
    assert isinstance(hits[0], PiiHit)


def test_hits_at_the_very_start_and_end_of_the_text() -> None:
    valid = cn_id("44030420011015123")
    for value, token in [
        ("4111 1111 1111 1111", "<CARD>"),
        ("8.8.8.8", "<IP>"),
        ("13812345678", "<PHONE>"),
        (valid, "<CN_ID>"),
        ("a@b.io", "<EMAIL>"),
    ]:
        assert redact(value)[0] == token


@pytest.mark.parametrize("text", ["", "纯中文文本，没有任何个人信息。", "a" * 10_000])
def test_texts_without_candidates(text: str) -> None:
    assert find_pii(text) == []
