"""The default recipe's data set: present, disjoint, balanced enough, and reproducible.

The card-number checks hold the data to the same ground truth the router's rule detectors
use (python-stdnum's Luhn): a confidential card row must carry a valid PAN, a "looks like a
card" hard negative must carry only numbers that fail Luhn, and no public row may contain a
Luhn-valid card-like number at all.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from stdnum import iban, luhn
from stdnum.cn import ric
from stdnum.us import ssn

DATA = Path(__file__).resolve().parents[1] / "recipes" / "data" / "sensitivity"
SPLITS = ("train", "eval", "calib")
SUBSETS = ("template", "out_of_template", "hard_negative")
CARD_LIKE = re.compile(r"(?<![A-Za-z0-9_.])(?:\d[ -]?){12,18}\d(?![A-Za-z0-9_])")
IBAN_LIKE = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"
)
CNID_LIKE = re.compile(r"(?<!\d)\d{17}[\dX](?![\dA-Za-z])")
SSN_LIKE = re.compile(r"(?<![\d-])\d{3}-?\d{2}-?\d{4}(?![\d-])")


def load(split: str, folder: Path = DATA) -> list[dict]:
    with (folder / f"{split}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def splits() -> dict[str, list[dict]]:
    return {split: load(split) for split in SPLITS}


def card_candidates(text: str) -> list[str]:
    found = (re.sub(r"\D", "", m.group()) for m in CARD_LIKE.finditer(text))
    return [d for d in found if 13 <= len(d) <= 19]


def test_rows_are_well_formed(splits):
    for split, rows in splits.items():
        for i, row in enumerate(rows, 1):
            assert isinstance(row["text"], str) and row["text"].strip(), (split, i)
            assert row["label"] in ("public", "confidential"), (split, i)
            assert row["lang"] in ("en", "zh"), (split, i)
            assert row["category"], (split, i)
            assert row["subset"] in SUBSETS, (split, i)
            assert split == "eval" or row["subset"] == "template", (split, i)


def test_sizes_labels_and_languages(splits):
    assert sum(len(rows) for rows in splits.values()) >= 2000
    for split, rows in splits.items():
        labels = {row["label"] for row in rows}
        assert labels == {"public", "confidential"}, split
        share = sum(row["label"] == "confidential" for row in rows) / len(rows)
        assert 0.35 <= share <= 0.55, (split, share)
        zh = [row for row in rows if row["lang"] == "zh"]
        assert 0.25 <= len(zh) / len(rows) < 0.75, split
        assert all(re.search(r"[\u4e00-\u9fff]", row["text"]) for row in zh), split


def test_splits_are_disjoint(splits):
    def norm(text: str) -> str:
        return re.sub(r"\s+", " ", text).strip().lower()

    seen: dict[str, str] = {}
    for split, rows in splits.items():
        for row in rows:
            key = norm(row["text"])
            assert key not in seen, f"{row['text']!r} in {seen.get(key)} and {split}"
            seen[key] = split


def test_every_category_in_train_and_eval(splits):
    train = {row["category"] for row in splits["train"]}
    eval_rows = [row for row in splits["eval"] if row["subset"] == "template"]
    assert train == {row["category"] for row in eval_rows}
    assert len(train) >= 25


def test_out_of_template_eval_holds_whole_categories_out_of_training(splits):
    """Leave-categories-out: no out-of-template category has a row in train or calib."""
    seen = {row["category"] for split in ("train", "calib") for row in splits[split]}
    held = [row for row in splits["eval"] if row["subset"] == "out_of_template"]
    categories = {row["category"] for row in held}
    assert categories and not categories & seen
    for label in ("public", "confidential"):
        for lang in ("en", "zh"):
            assert sum(r["label"] == label and r["lang"] == lang for r in held) >= 30


@pytest.fixture
def generator_modules(monkeypatch) -> dict:
    """The generator's pools, imported from the data folder and forgotten afterwards."""
    monkeypatch.syspath_prepend(str(DATA))
    names = ("values", "templates", "concepts")
    modules = {name: importlib.import_module(name) for name in names}
    yield modules
    for name in names:
        sys.modules.pop(name, None)


def wording(template: str) -> set[str]:
    """Word 4-grams and Chinese character 5-grams of a template's own text, never across a
    slot: the phrasing a model could learn from it."""
    grams = set()
    for part in re.split(r"\{[^}]*\}", template):
        words = re.findall(r"[a-z0-9']+", part.lower())
        grams |= {" ".join(words[i : i + 4]) for i in range(len(words) - 3)}
        for run in re.findall(r"[\u4e00-\u9fff]+", part):
            grams |= {run[i : i + 5] for i in range(len(run) - 4)}
    return grams


def test_held_out_categories_share_no_wording_with_training(generator_modules):
    """The out-of-template eval's sentence pools share no phrase with anything training
    sees (trained concept pools, body templates, wrappers), so it measures the concept."""
    concepts, templates = generator_modules["concepts"], generator_modules["templates"]
    trained = [t for _, role, pools in concepts.CONCEPTS.values() if role == "train"
               for pool in pools.values() for t in pool]  # fmt: skip
    for table in (templates.CONFIDENTIAL, templates.PUBLIC):
        trained += [t for _, _, en, zh in table.values() for t in en + zh]
    for table in (templates.WRAPPERS, templates.CROSS_WRAPPERS, templates.CONTEXTS):
        trained += [t for pool in table.values() for t in pool]
    seen = set().union(*map(wording, trained))
    held = [(name, t) for name, (_, role, pools) in concepts.CONCEPTS.items()
            if role == "heldout" for pool in pools.values() for t in pool]  # fmt: skip
    assert len(held) >= 30
    for name, template in held:
        assert not wording(template) & seen, (name, template, wording(template) & seen)


def test_hard_negatives_are_public_and_of_every_kind(splits):
    hard = [row for row in splits["eval"] if row["subset"] == "hard_negative"]
    assert hard and all(row["label"] == "public" for row in hard)
    assert len({row["category"] for row in hard}) >= 8
    assert {row["lang"] for row in hard} == {"en", "zh"}


def test_lengths_range_from_a_few_words_to_long_documents(splits):
    words = [len(row["text"].split()) for row in splits["train"] if row["lang"] == "en"]
    assert min(words) <= 5 and max(words) >= 300
    for label in ("public", "confidential"):  # long rows of both labels: length is no signal
        long_rows = [r for r in splits["train"] if r["label"] == label and len(r["text"]) > 1200]
        assert len(long_rows) >= 15, label


def test_card_numbers_pass_luhn_and_hard_negatives_fail(splits):
    rows = [row for rows in splits.values() for row in rows]
    cards = [row for row in rows if row["category"] == "card"]
    fakes = [row for row in rows if row["category"] == "luhn_fail"]
    assert len(cards) >= 50 and len(fakes) >= 50
    for row in cards:
        found = card_candidates(row["text"])
        assert found and all(luhn.is_valid(d) for d in found), row["text"]
    for row in fakes:
        found = card_candidates(row["text"])
        assert found and not any(luhn.is_valid(d) for d in found), row["text"]
    for row in rows:
        if row["label"] == "public":
            assert not any(luhn.is_valid(d) for d in card_candidates(row["text"])), row["text"]


def test_identifiers_validate(splits):
    """IBANs pass mod 97, resident IDs their ISO 7064 check, SSNs the SSA rules."""
    rows = [row for rows in splits.values() for row in rows]
    checks = {"iban": (IBAN_LIKE, iban.is_valid), "cnid": (CNID_LIKE, ric.is_valid),
              "ssn": (SSN_LIKE, ssn.is_valid)}  # fmt: skip
    for category, (pattern, is_valid) in checks.items():
        chosen = [row for row in rows if row["category"] == category]
        assert len(chosen) >= 50, category
        for row in chosen:
            found = [m.group() for m in pattern.finditer(row["text"])]
            assert found and all(is_valid(v) for v in found), (category, row["text"])


def test_generator_reproduces_files_byte_for_byte(tmp_path):
    script = DATA / "generate.py"
    cmd = [sys.executable, str(script), "--out", str(tmp_path), "--stats"]
    done = subprocess.run(cmd, check=True, timeout=120, capture_output=True, text=True)
    for split in SPLITS:
        produced = (tmp_path / f"{split}.jsonl").read_bytes()
        assert produced == (DATA / f"{split}.jsonl").read_bytes(), split
    # The README's counts are the generator's own table, so they cannot go stale.
    assert done.stdout.strip() in (DATA / "README.md").read_text(encoding="utf-8")
