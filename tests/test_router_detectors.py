"""Each detector with positive and hard-negative examples, English and Chinese.

Hard negatives look like the real thing but fail the validator (checksum, number rules) or
lack the context the detector needs; they must not fire.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn

from router.config import ClassifierConfig
from router.metrics import RouterMetrics
from router.sensitivity import registry
from router.sensitivity.classifier import Classifier
from router.sensitivity.detectors import card

DETECTORS = registry.all_detectors()

POSITIVE = {
    "card": ["Charge my card 4111 1111 1111 1111 please", "Mastercard 5500-0000-0000-0004",
             "卡号4012888888881881，有效期12/27"],
    "iban": ["Pay to DE89 3704 0044 0532 0130 00 today", "IBAN GB82WEST12345698765432",
             "收款账户FR1420041010050500013M02606"],
    "ssn": ["SSN 123-45-6789 on file", "her social security number is 219-09-9998",
            "my SSN is 167137280", "我的社安号378094617需要更正"],
    "cn_id": ["身份证号11010519491231002X", "ID card: 11010519491231002x"],
    "phone": ["call me at (650) 253-0000 tomorrow", "reach the office on +44 20 7031 3000",
              "我的手机是13800138000", "联系电话：+86 138 0013 8000"],
    "email": ["my email is jane.doe@gmail.com", "customer contact: bob_smith@outlook.com",
              "客户邮箱 zhang.wei@163.com", "帮我给赵杰发个邮件到wchen81@gmail.com，约她周末见面"],
    "bank_account": ["account number 12345678 at Chase", "routing number 021000021",
                     "我的银行卡账号是 6222 0212 3456 7890"],
    "passport": ["passport number X12345678", "护照号码E12345678", "passport no. C05HL0YV8",
                 "我的护照号是C89TG7W7N"],
    "health": ["MRN: 00123456", "I was diagnosed with diabetes last year",
               "患者张伟确诊糖尿病", "my mother is in chemotherapy"],
    "secret": [
        "aws key AKIAZ7QRSTUV2WXYZ345",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...",
        "token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "ghp_" + "a1B2" * 9,
        "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
        "xoxb-123456789012-abcdefghijkl",
        "db.password=hunter2x",
        "数据库密码：Abc12345",
        "data={'username': 'ops', 'password': 'Maple5896Taac'}",
        "DATABASES password 'Lotus#22471' for host db-prod",
        "the router admin password is Orion58RT7l",
        "OPENAI_API_KEY=sk-TpLKXS_mAWe7Wfx9rxWK-_piEkjgMtUNepONhYmQXynPqc2M",
    ],
    "marker": ["CONFIDENTIAL: Q3 plan", "Attorney-Client Privileged communication",
               "本文件为内部机密", "仅限内部使用，请勿外传"],
}  # fmt: skip

NEGATIVE = {
    "card": ["card 4111 1111 1111 1112 fails Luhn", "订单号 1234 5678 1234 5678", "call 1234 5678"],
    "iban": ["DE89 3704 0044 0532 0130 01 has a bad check", "model GB82XYZ is a router SKU"],
    "ssn": ["000-12-3456 is not a real SSN", "666-12-3456", "078-05-1120 (advertised)",
            "part 123-45-67890"],
    "cn_id": ["编号110105194912310021", "110105194913310025 date is invalid"],
    "phone": ["the years 2019-2023 were busy", "version 10.2.3.4 released",
              "订单编号 13800138000 已发货", "ISO date 2024-05-06 12:30"],
    "email": ["Report bugs to bugs@python.org", "The address format is name@example.com",
              "请发送至 support@company.com 获取帮助"],
    "bank_account": ["routing number 123456789 is not valid", "order 12345678 shipped",
                     "the account has 3 users"],
    "passport": ["passport photos cost $15", "SKU AB123456 in stock", "护照办理需要几天？",
                 "passport OFFICE hours"],
    "health": ["Diabetes is a common disease worldwide.", "Explain how chemotherapy works.",
               "糖尿病是一种常见疾病。", "MRN stands for medical record number",
               "I need help. What's the difference between type 1 and type 2 diabetes?"],
    "secret": ["How do I reset my password?", "password=<your password>", "api_key=${API_KEY}",
               "eyJhbGciOiJIUzI1NiIs is cut short", "AKIA1234 is too short", "忘记密码怎么办？",
               "AWS docs use AKIAIOSFODNN7EXAMPLE as an example", "which password manager?",
               "password is required", 'password = os.environ["DB_PASSWORD"]',
               "stripe.api_key = 'sk_test_xxx'"],
    "marker": ["We value confidentiality.", "I have confidence in this plan",
               "What does internal combustion mean?", "机器学习是什么？"],
}  # fmt: skip

PUBLIC = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain how a hash table works in 3 sentences.",
    "Translate 'good morning' into Spanish.",
    "什么是机器学习？",
    "请用三句话介绍长城的历史。",
    "How do credit cards work in general?",
    "List the HTTP status codes 429 and 503 and what they mean.",
]


def test_every_detector_has_examples() -> None:
    assert set(POSITIVE) == set(DETECTORS) == set(NEGATIVE)


@pytest.mark.parametrize(("label", "text"), [(k, t) for k, v in POSITIVE.items() for t in v])
def test_positive(label: str, text: str) -> None:
    assert DETECTORS[label].found(text), f"{label} missed: {text!r}"


@pytest.mark.parametrize(("label", "text"), [(k, t) for k, v in NEGATIVE.items() for t in v])
def test_hard_negative(label: str, text: str) -> None:
    assert not DETECTORS[label].found(text), f"{label} fired on: {text!r}"


@pytest.mark.parametrize("text", PUBLIC)
def test_plain_prompts_fire_nothing(text: str) -> None:
    fired = [label for label, d in DETECTORS.items() if d.found(text)]
    assert fired == []


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier(ClassifierConfig(), RouterMetrics(), None)


@pytest.mark.parametrize(("label", "text"), [(k, t) for k, v in POSITIVE.items() for t in v])
def test_positive_through_the_prefiltered_scan(classifier: Classifier, label: str, text: str):
    assert label in classifier.scan([text]), f"{label} missed by the fast path: {text!r}"


@pytest.mark.parametrize(("label", "text"), [(k, t) for k, v in NEGATIVE.items() for t in v])
def test_hard_negative_through_the_prefiltered_scan(classifier: Classifier, label, text):
    assert label not in classifier.scan([text])


@pytest.mark.parametrize("text", PUBLIC)
def test_plain_prompts_need_no_detector(classifier: Classifier, text: str) -> None:
    pre = classifier._prefilter
    assert classifier.scan([text]) == ()
    assert [pre.labels[i] for i, _, need in pre.parts if need & pre.present(text) == need] == []


def test_select_rejects_unknown_labels() -> None:
    with pytest.raises(ValueError, match="unknown detector"):
        registry.select(["card", "nope"])
    assert [d.label for d in registry.select(["iban", "card"])] == ["iban", "card"]


def test_cn_id_where_stdnum_region_table_raises() -> None:
    """python-stdnum raises KeyError for some region codes; the checksum and birth date
    decide there, so the request is neither failed nor let through unread."""
    from stdnum.cn import ric

    from router.sensitivity.detectors.cn_id import DETECTOR

    with pytest.raises(KeyError):
        ric.is_valid("111524493909266859")
    assert DETECTOR.found("身份证 111524493909266859")  # checksum right
    assert not DETECTOR.found("身份证 111524493909266850")  # checksum wrong


def test_cn_id_fast_check_agrees_with_stdnum() -> None:
    """The reordered, memoised check gives stdnum's answer: real region codes with birth
    years across their validity ranges and bad dates, right and wrong check characters."""
    import random

    from stdnum.cn import ric

    from router.sensitivity.detectors import cn_id

    rng = random.Random(7)
    regions = ["110105", "111524", "440305", "320102", "999999", "130000", "652928", "441900"]
    regions += [f"{rng.randrange(110000, 660000)}" for _ in range(40)]
    seen = {True: 0, False: 0}
    for _ in range(3000):
        body = (
            rng.choice(regions)
            + str(rng.choice([1900, 1949, 1980, 1985, 1999, 2005, rng.randrange(1000, 2999)]))
            + f"{rng.randrange(0, 14):02d}{rng.randrange(0, 33):02d}{rng.randrange(1000):03d}"
        )
        for last in {ric.calc_check_digit(body + "0"), rng.choice("0123456789X")}:
            value = body + (last.lower() if rng.random() < 0.2 else last)
            got = cn_id._valid(value)
            assert got == cn_id._stdnum_valid(value), value
            seen[got] += 1
    assert min(seen.values()) > 100  # both answers were exercised
    assert cn_id._valid("１１０１０５１９４９１２３１００２X")  # full-width: stdnum's path


def test_iban_fast_check_agrees_with_stdnum() -> None:
    """IBANs for every country in stdnum's registry (valid, one character changed, wrong
    length) and random pattern-shaped strings: the memoised check gives stdnum's answer."""
    import random
    import re

    from stdnum import iban, numdb

    from router.sensitivity.detectors import iban as detector

    rng = random.Random(11)
    kinds = {"n": "0123456789", "a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "c": "ABCXYZ0123456789"}
    values = []
    for _, code, _, entry, _ in numdb.get("iban").prefixes:
        parts = re.findall(r"([1-9][0-9]*)!([nac])", entry.get("bban", ""))
        for _ in range(20):
            bban = "".join(rng.choice(kinds[k]) for n, k in parts for _ in range(int(n)))
            number = code + "00" + bban
            number = number[:2] + iban.calc_check_digits(number) + number[4:]
            values += [number, number[:-1] + rng.choice("0123456789"), number + "7"]
            values.append(" ".join(number[i : i + 4] for i in range(0, len(number), 4)))
    values += [
        rng.choice(["DE", "GB", "BE", "ES", "XX", "QQ"]) + f"{rng.randrange(100):02d}"
        + "".join(rng.choice("0123456789ABC") for _ in range(rng.randrange(11, 31)))
        for _ in range(2000)
    ]  # fmt: skip
    answers = {True: 0, False: 0}
    for value in values:
        got = detector._valid(value)
        assert got == iban.is_valid(value), value
        answers[got] += 1
    assert min(answers.values()) > 500  # both answers were exercised


def test_phone_possible_before_valid_is_exact() -> None:
    """phone._valid asks is_possible_number first: exact only while every region's lengths are
    among its calling code's main region's (libphonenumber's rule), so check that rule on the
    installed metadata, and the answers against validation alone on many numbers."""
    import random

    import phonenumbers
    from phonenumbers import PhoneMetadata
    from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

    from router.sensitivity.detectors import phone

    for code, regions in COUNTRY_CODE_TO_REGION_CODE.items():
        main = PhoneMetadata.metadata_for_region_or_calling_code(code, regions[0]).general_desc
        lengths = set(main.possible_length) | set(main.possible_length_local_only)
        for region in regions:
            desc = PhoneMetadata.metadata_for_region_or_calling_code(code, region).general_desc
            assert desc.possible_length and set(desc.possible_length) <= lengths, region

    def validation_only(value: str) -> bool:
        for region in (None,) if value.startswith("+") else ("US", "CN", "GB"):
            try:
                number = phonenumbers.parse(value, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return True
        return False

    rng = random.Random(5)
    values = [
        phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        if (example := phonenumbers.example_number(region)) is not None
    ]
    values += ["(650) 253-0000", "13800138000", "020 7031 3000", "32010220031104713"]
    values += ["".join(rng.choice("0123456789") for _ in range(rng.randrange(7, 20)))
               for _ in range(1500)]  # fmt: skip
    values += ["+" + v for v in values[-300:]]
    answers = [phone._valid(v) for v in values]
    assert answers == [validation_only(v) for v in values]
    assert 100 < sum(answers) < len(values) - 100  # both answers were exercised


digit_groups = st.lists(st.text("0123456789", min_size=1, max_size=6), max_size=4)


@st.composite
def cards(draw) -> str:
    """A Luhn-valid number of 13-19 digits in the IIN ranges the detector knows, grouped."""
    body = draw(st.sampled_from("23456")) + draw(st.text("0123456789", min_size=11, max_size=17))
    number = body + luhn.calc_check_digit(body)
    size = draw(st.sampled_from([4, 5, len(number)]))
    return draw(st.sampled_from([" ", "-"])).join(
        number[i : i + size] for i in range(0, len(number), size)
    )


@settings(max_examples=300, deadline=None)
@given(cards(), digit_groups, digit_groups, st.sampled_from([" ", "-"]))
def test_a_card_is_found_whatever_digit_groups_stand_around_it(number, before, after, sep):
    if len(set(number.replace(" ", "").replace("-", ""))) == 1:
        return  # one digit repeated is not taken for a card
    text = "ref " + sep.join([*before, number, *after]) + " please"
    assert card.DETECTOR.found(text)
