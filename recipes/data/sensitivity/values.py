"""Slot fillers for the sensitivity data generator: synthetic values, valid where it matters.

Every identifier that a real detector would validate (card numbers, IBANs, SSNs, Chinese
resident IDs, ABA routing numbers) is built and then checked with python-stdnum, so the
confidential rows carry numbers a Luhn / mod-97 / checksum validator accepts, and the
"looks like a card but is not" hard negatives are checked to *fail* Luhn.
All randomness comes from the `random.Random` passed in, so the output is reproducible.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string

from stdnum import iban, luhn
from stdnum.cn import ric
from stdnum.us import rtn, ssn

Rng = random.Random

# A card-like run of 13-19 digits, optionally grouped by single spaces or dashes. ASCII
# look-arounds: a PAN right after a Chinese character ("卡号4111...") must still count.
CARD_LIKE = re.compile(r"(?<![A-Za-z0-9_.])(?:\d[ -]?){12,18}\d(?![A-Za-z0-9_])")


def card_candidates(text: str) -> list[str]:
    """Digit strings in `text` that a card detector would try to validate."""
    out = []
    for match in CARD_LIKE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19:
            out.append(digits)
    return out


def digits(rng: Rng, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def alnum(rng: Rng, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


# ---------------------------------------------------------------- payment cards
_CARD_PREFIXES = [  # (prefix choices, length)
    (["4"], 16),
    (["51", "52", "53", "54", "55", "2221", "2720", "2500"], 16),
    (["34", "37"], 15),
    (["6011", "65"], 16),
    (["62"], 16),
    (["62"], 19),
    (["3528", "3589", "3566"], 16),
]


def card_number(rng: Rng) -> str:
    """A Luhn-valid PAN of a plausible brand and length."""
    prefixes, length = rng.choice(_CARD_PREFIXES)
    body = rng.choice(prefixes)
    body += digits(rng, length - 1 - len(body))
    number = body + luhn.calc_check_digit(body)
    assert luhn.is_valid(number)
    return number


def format_card(rng: Rng, number: str) -> str:
    """Group the PAN the ways people paste it: 4-4-4-4, dashes, none, Amex 4-6-5."""
    style = rng.random()
    if style < 0.3:
        return number
    sep = " " if style < 0.75 else "-"
    if len(number) == 15:
        return sep.join([number[:4], number[4:10], number[10:]])
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


def card(rng: Rng, lang: str) -> str:
    return format_card(rng, card_number(rng))


def card_exp(rng: Rng, lang: str) -> str:
    return f"{rng.randint(1, 12):02d}/{rng.randint(26, 32)}"


def cvv(rng: Rng, lang: str) -> str:
    return digits(rng, rng.choice([3, 3, 3, 4]))


def luhn_fail(rng: Rng, lang: str) -> str:
    """A 16-digit reference number that fails Luhn (order, tracking, invoice numbers)."""
    while True:
        number = rng.choice("123456789") + digits(rng, 15)
        if not luhn.is_valid(number):
            break
    if rng.random() < 0.35:
        return " ".join(number[i : i + 4] for i in range(0, 16, 4))
    return number


# ---------------------------------------------------------------- IBAN
_IBAN_BBAN = {  # country: BBAN pattern, a = upper letter, n = digit
    "DE": "n" * 18,
    "GB": "aaaa" + "n" * 14,
    "FR": "n" * 23,
    "NL": "aaaa" + "n" * 10,
    "IT": "a" + "n" * 22,
    "CH": "n" * 17,
    "AT": "n" * 16,
    "PL": "n" * 24,
    "IE": "aaaa" + "n" * 14,
    "ES": "n" * 20,
    "BE": "n" * 12,
}


def iban_number(rng: Rng) -> str:
    """An IBAN that stdnum accepts (mod 97, country structure, national checks)."""
    country = rng.choice(sorted(_IBAN_BBAN))
    while True:
        bban = "".join(
            rng.choice(string.ascii_uppercase) if c == "a" else rng.choice(string.digits)
            for c in _IBAN_BBAN[country]
        )
        number = country + iban.calc_check_digits(country + "00" + bban) + bban
        if iban.is_valid(number):
            return number


def iban_value(rng: Rng, lang: str) -> str:
    number = iban_number(rng)
    return iban.format(number) if rng.random() < 0.6 else number


# ---------------------------------------------------------------- national IDs
def ssn_value(rng: Rng, lang: str) -> str:
    while True:
        area = rng.choice([a for a in range(1, 900) if a != 666])
        number = f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
        if ssn.is_valid(number):
            return number if rng.random() < 0.8 else number.replace("-", "")


_CN_REGIONS = [
    "110105",
    "110108",
    "310104",
    "310115",
    "440305",
    "440106",
    "510107",
    "330106",
    "320102",
    "420111",
    "610113",
    "500103",
    "120101",
    "350203",
    "370202",
    "210102",
]


def cnid_value(rng: Rng, lang: str) -> str:
    """An 18-digit resident ID with a real region code, birth date and ISO 7064 check."""
    while True:
        base = (
            rng.choice(_CN_REGIONS)
            + f"{rng.randint(1950, 2006)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            + digits(rng, 3)
        )
        number = base + ric.calc_check_digit(base + "0")
        if ric.is_valid(number):
            return number


def passport(rng: Rng, lang: str) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.choice("56") + digits(rng, 8)  # US book
    if kind == 1:
        return "E" + digits(rng, 8)  # PRC e-passport
    if kind == 2:
        return "C" + alnum(rng, 8, "CFGHJKLMNPRTVWXYZ0123456789")  # German
    return digits(rng, 9)  # UK


# ---------------------------------------------------------------- contact details
def phone(rng: Rng, lang: str) -> str:
    kind = rng.randrange(5) if lang == "en" else rng.choice([2, 3, 3])
    if kind == 0:
        return f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{digits(rng, 4)}"
    if kind == 1:
        return f"+44 7{digits(rng, 3)} {digits(rng, 6)}"
    if kind == 2:
        return f"+86 1{rng.choice('3456789')}{digits(rng, 1)} {digits(rng, 4)} {digits(rng, 4)}"
    if kind == 3:
        return f"1{rng.choice('3456789')}{digits(rng, 9)}"
    return f"{rng.randint(201, 989)}-{rng.randint(200, 999)}-{digits(rng, 4)}"


_MAIL_DOMAINS = [
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "163.com",
    "qq.com",
    "proton.me",
    "hotmail.co.uk",
    "gmx.de",
    "126.com",
]


def email(rng: Rng, lang: str) -> str:
    first, last = rng.choice(EN_FIRST).lower(), rng.choice(EN_LAST).lower()
    if lang == "zh":
        first, last = rng.choice(PINYIN_GIVEN), rng.choice(PINYIN_SURNAME)
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first}{last[0]}",
            f"{first[0]}{last}{digits(rng, 2)}",
            f"{last}{first}{rng.randint(70, 99)}",
            f"{first}_{last}",
        ]
    )
    return f"{local}@{rng.choice(_MAIL_DOMAINS)}"


def address(rng: Rng, lang: str) -> str:
    if lang == "zh":
        return (
            f"{rng.choice(ZH_CITIES)}市{rng.choice(ZH_STREETS)}{rng.randint(1, 300)}号"
            f"{rng.randint(1, 30)}栋{rng.randint(101, 2802)}室"
        )
    return f"{rng.randint(2, 9800)} {rng.choice(EN_STREETS)}, {rng.choice(EN_CITIES)}"


# ---------------------------------------------------------------- banking
def routing(rng: Rng, lang: str) -> str:
    while True:
        base = f"{rng.choice(['0', '1', '2', '3'])}{rng.randint(1, 9)}" + digits(rng, 6)
        number = base + rtn.calc_check_digit(base)
        if rtn.is_valid(number):
            return number


def account(rng: Rng, lang: str) -> str:
    return digits(rng, rng.randint(8, 12))


def cn_bankcard(rng: Rng, lang: str) -> str:
    body = "62" + rng.choice(["2202", "2848", "1700", "2588", "1483"]) + digits(rng, 12)
    return body + luhn.calc_check_digit(body)


def sort_code(rng: Rng, lang: str) -> str:
    return f"{rng.randint(10, 99)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}"


# ---------------------------------------------------------------- health
def mrn(rng: Rng, lang: str) -> str:
    return rng.choice(
        [
            f"MRN {digits(rng, 8)}",
            f"MRN: {digits(rng, 7)}",
            f"#{digits(rng, 9)}",
            f"{rng.choice('ABZ')}{digits(rng, 7)}",
        ]
    )


def dob(rng: Rng, lang: str) -> str:
    y, m, d = rng.randint(1935, 2015), rng.randint(1, 12), rng.randint(1, 28)
    if lang == "zh":
        return f"{y}年{m}月{d}日"
    return rng.choice([f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{d} {MONTHS[m - 1]} {y}"])


# ---------------------------------------------------------------- credentials
def aws_key(rng: Rng, lang: str) -> str:
    return "AKIA" + alnum(rng, 16, string.ascii_uppercase + "234567")


def aws_secret(rng: Rng, lang: str) -> str:
    return alnum(rng, 40, string.ascii_letters + string.digits + "+/")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: Rng, lang: str) -> str:
    """A structurally real JWT whose payload names a user (signature is random bytes)."""
    header = {"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}
    payload = {
        "sub": digits(rng, 6),
        "email": email(rng, "en"),
        "iat": 1760000000 + rng.randint(0, 9999999),
    }
    sig = bytes(rng.randrange(256) for _ in range(32))
    parts = [
        json.dumps(header, separators=(",", ":")).encode(),
        json.dumps(payload, separators=(",", ":")).encode(),
    ]
    return ".".join([_b64url(parts[0]), _b64url(parts[1]), _b64url(sig)])


def pem(rng: Rng, lang: str) -> str:
    kind = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY", "EC PRIVATE KEY"])
    b64 = string.ascii_letters + string.digits + "+/"
    lines = ["MII" + alnum(rng, 61, b64)] + [alnum(rng, 64, b64) for _ in range(rng.randint(1, 2))]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"


def ghp(rng: Rng, lang: str) -> str:
    return rng.choice(["ghp_", "gho_", "github_pat_"]) + alnum(rng, 36)


def sk_live(rng: Rng, lang: str) -> str:
    return rng.choice(["sk_live_", "rk_live_"]) + alnum(rng, rng.randint(24, 34))


def xoxb(rng: Rng, lang: str) -> str:
    return f"{rng.choice(['xoxb', 'xoxp'])}-{digits(rng, 12)}-{digits(rng, 13)}-{alnum(rng, 24)}"


def secret_pw(rng: Rng, lang: str) -> str:
    word = rng.choice(
        [
            "Summer",
            "Tiger",
            "Dragon",
            "Maple",
            "Falcon",
            "Orion",
            "Panda",
            "Winter",
            "qwerty",
            "Harbor",
            "Lotus",
            "Zephyr",
            "Nimbus",
            "Copper",
        ]
    )
    return (
        word
        + rng.choice(["!", "@", "#", "$", "_", "&", ""])
        + digits(rng, rng.randint(2, 4))
        + alnum(rng, rng.randint(0, 4))
    )


def conn_str(rng: Rng, lang: str) -> str:
    user = rng.choice(["admin", "app", "svc_billing", "root", "reporting", "etl", "postgres"])
    host = rng.choice(
        [
            "db-prod-01.internal",
            "10.0.3.17",
            "pg.corp.lan",
            "mysql-main.svc",
            "cluster0.x7kq2.mongodb.net",
            "reports-db.eu-west-1.rds.amazonaws.com",
        ]
    )
    db = rng.choice(["billing", "crm", "hr", "orders", "analytics", "payroll"])
    scheme, port = rng.choice(
        [
            ("postgresql", 5432),
            ("mysql", 3306),
            ("mongodb+srv", None),
            ("redis", 6379),
            ("mssql", 1433),
        ]
    )
    hostport = host if port is None else f"{host}:{port}"
    return f"{scheme}://{user}:{secret_pw(rng, lang)}@{hostport}/{db}"


def api_token(rng: Rng, lang: str) -> str:
    return rng.choice([aws_key, ghp, sk_live, xoxb])(rng, lang)


# ---------------------------------------------------------------- business and HR
def money(rng: Rng, lang: str) -> str:
    if lang == "zh":
        return rng.choice(
            [f"{rng.randint(2, 90)}.{rng.randint(1, 9)}亿元", f"{rng.randint(300, 9000)}万元"]
        )
    return rng.choice(
        [
            f"${rng.randint(12, 980)}M",
            f"${rng.randint(1, 9)}.{rng.randint(1, 9)}B",
            f"€{rng.randint(20, 600)} million",
        ]
    )


def pct(rng: Rng, lang: str) -> str:
    return f"{rng.randint(2, 38)}.{rng.randint(0, 9)}%"


def quarter(rng: Rng, lang: str) -> str:
    q, y = rng.randint(1, 4), rng.choice([2026, 2027])
    return f"{y}年第{'一二三四'[q - 1]}季度" if lang == "zh" else rng.choice([f"Q{q} {y}", f"Q{q}"])


def salary(rng: Rng, lang: str) -> str:
    if lang == "zh":
        return rng.choice(
            [
                f"月薪{rng.randint(12, 85)}k",
                f"年薪{rng.randint(18, 160)}万",
                f"每月{rng.randint(9, 60) * 1000}元",
            ]
        )
    return rng.choice(
        [
            f"${rng.randint(58, 260)},{rng.randint(0, 9)}00",
            f"£{rng.randint(32, 140)}k",
            f"${rng.randint(60, 240)}k a year",
        ]
    )


def emp_id(rng: Rng, lang: str) -> str:
    return rng.choice(["E", "EMP-", "HR", "#"]) + digits(rng, rng.randint(4, 6))


def rating(rng: Rng, lang: str) -> str:
    return f"{rng.randint(1, 5)}/5"


def codename(rng: Rng, lang: str) -> str:
    return "Project " + rng.choice(
        [
            "Falcon",
            "Bluebird",
            "Kestrel",
            "Atlas",
            "Nightjar",
            "Cobalt",
            "Tidewater",
            "Juniper",
            "Granite",
            "Halcyon",
            "Meridian",
        ]
    )


def order_no(rng: Rng, lang: str) -> str:
    return rng.choice(["#", "ORD-", "SO", ""]) + digits(rng, rng.randint(6, 10))


def number(rng: Rng, lang: str) -> str:
    return str(rng.randint(2, 999))


def year(rng: Rng, lang: str) -> str:
    return str(rng.randint(1990, 2026))


# ---------------------------------------------------------------- word lists
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
EN_FIRST = [
    "James",
    "Maria",
    "Robert",
    "Aisha",
    "Daniel",
    "Priya",
    "Olivia",
    "Mohammed",
    "Emma",
    "Lucas",
    "Sofia",
    "Ethan",
    "Hannah",
    "Kenji",
    "Fatima",
    "Liam",
    "Chloe",
    "Mateo",
    "Grace",
    "Noah",
    "Isabel",
    "Omar",
    "Zoe",
    "Samuel",
    "Elena",
    "Victor",
    "Nora",
    "Thomas",
    "Amara",
    "Diego",
    "Ruth",
    "Felix",
    "Leah",
    "Arjun",
    "Mia",
    "Oscar",
]
EN_LAST = [
    "Smith",
    "Lopez",
    "Nguyen",
    "Patel",
    "Johnson",
    "Okafor",
    "Kowalski",
    "Garcia",
    "Brown",
    "Muller",
    "Rossi",
    "Tanaka",
    "Haddad",
    "Williams",
    "Novak",
    "Fischer",
    "Kim",
    "Reyes",
    "Andersson",
    "Murphy",
    "Schmidt",
    "Dubois",
    "Silva",
    "Walker",
    "Cohen",
    "Ivanova",
    "Martin",
    "Clarke",
    "Hughes",
    "Bianchi",
    "Park",
    "Moreau",
    "Wright",
    "Chen",
]
ZH_SURNAME = [
    "王",
    "李",
    "张",
    "刘",
    "陈",
    "杨",
    "黄",
    "赵",
    "吴",
    "周",
    "徐",
    "孙",
    "马",
    "朱",
    "胡",
    "郭",
    "何",
    "林",
    "罗",
    "高",
    "郑",
    "梁",
    "谢",
    "宋",
    "唐",
    "许",
    "韩",
    "冯",
]
ZH_GIVEN = [
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "霞",
    "平",
    "刚",
    "桂英",
    "子轩",
    "欣怡",
    "浩然",
    "梓涵",
    "宇航",
    "雨桐",
    "建国",
    "晓东",
    "丹",
    "一鸣",
    "思远",
    "佳琪",
]
PINYIN_SURNAME = [
    "wang",
    "li",
    "zhang",
    "liu",
    "chen",
    "yang",
    "huang",
    "zhao",
    "wu",
    "zhou",
    "xu",
    "lin",
]
PINYIN_GIVEN = [
    "wei",
    "fang",
    "na",
    "min",
    "jing",
    "lei",
    "yang",
    "jie",
    "tao",
    "ming",
    "xin",
    "hao",
    "yu",
]
EN_CITIES = [
    "Austin",
    "Leeds",
    "Denver",
    "Toronto",
    "Manchester",
    "Seattle",
    "Dublin",
    "Boston",
    "Phoenix",
    "Bristol",
    "Chicago",
    "Melbourne",
    "Portland",
    "Glasgow",
]
EN_STREETS = [
    "Maple Ave",
    "Oak Street",
    "Church Road",
    "Elm Drive",
    "Victoria Road",
    "Hill St",
    "Park Lane",
    "Cedar Court",
    "High Street",
    "Lakeview Blvd",
]
ZH_CITIES = [
    "北京",
    "上海",
    "深圳",
    "广州",
    "成都",
    "杭州",
    "南京",
    "武汉",
    "西安",
    "重庆",
    "天津",
    "厦门",
]
ZH_STREETS = [
    "中山路",
    "解放路",
    "人民路",
    "建设路",
    "和平街",
    "文化路",
    "长江路",
    "新华街",
    "南京路",
]
EN_COMPANIES = [
    "Northwind Analytics",
    "Brightwave Labs",
    "Helix Biotech",
    "Crestline Logistics",
    "Orbital Foods",
    "Quantia Systems",
    "Redfern Retail",
    "Lumen Health",
    "Ironbark Energy",
    "Silverpeak Capital",
    "Tessellate AI",
    "Harborview Insurance",
    "Pinecrest Media",
]
ZH_COMPANIES = [
    "华信科技",
    "远航物流",
    "星辰医药",
    "瑞丰银行",
    "天启智能",
    "博远教育",
    "鼎盛地产",
    "蓝海零售",
    "中科云图",
    "金桥资本",
    "恒通电子",
    "新锐传媒",
]
EN_DIAGNOSES = [
    "type 2 diabetes",
    "major depressive disorder",
    "atrial fibrillation",
    "HIV",
    "stage II breast cancer",
    "bipolar disorder",
    "chronic kidney disease stage 3",
    "early-onset Alzheimer's",
    "hepatitis C",
    "epilepsy",
    "generalized anxiety disorder",
    "COPD",
    "multiple sclerosis",
    "a torn ACL",
    "hypothyroidism",
]
ZH_DIAGNOSES = [
    "二型糖尿病",
    "抑郁症",
    "房颤",
    "乙肝",
    "乳腺癌二期",
    "双相情感障碍",
    "慢性肾病",
    "高血压三级",
    "癫痫",
    "焦虑症",
    "肺结节",
    "甲状腺功能减退",
    "痛风",
]
MEDICATIONS = [
    "metformin 500 mg",
    "sertraline 50 mg",
    "apixaban 5 mg",
    "lithium 300 mg",
    "levothyroxine 75 mcg",
    "insulin glargine 20 units",
    "tamoxifen 20 mg",
    "lamotrigine 100 mg",
    "atorvastatin 40 mg",
    "quetiapine 25 mg",
    "amlodipine 10 mg",
]
ZH_RELATIONS = [
    "我妈妈",
    "我爸",
    "我老婆",
    "我丈夫",
    "我同事",
    "我女儿",
    "我儿子",
    "我奶奶",
    "我的室友",
    "我姐姐",
]
EN_RELATIONS = [
    "my mother",
    "my dad",
    "my wife",
    "my husband",
    "my colleague",
    "my daughter",
    "my son",
    "my grandmother",
    "my roommate",
    "my sister",
    "my neighbour",
    "my client",
]
EN_PRODUCTS = [
    "the Aurora headset",
    "Nimbus 3",
    "the Q-series router",
    "Atlas Cloud v5",
    "the Pulse wearable",
    "Vega SDK 2.0",
    "the Orion tablet",
]
ZH_PRODUCTS = ["星河手机", "云图三代", "极光耳机", "天枢平台", "灵犀助手二代", "北斗车载系统"]
DISHES_EN = [
    "lasagna",
    "pad thai",
    "banana bread",
    "chicken curry",
    "ramen",
    "shakshuka",
    "mushroom risotto",
    "beef stew",
    "falafel",
    "apple pie",
    "paella",
]
DISHES_ZH = [
    "红烧肉",
    "宫保鸡丁",
    "麻婆豆腐",
    "西红柿炒鸡蛋",
    "饺子",
    "糖醋排骨",
    "酸菜鱼",
    "回锅肉",
    "小笼包",
]
PLACES_EN = [
    "Kyoto",
    "Lisbon",
    "Iceland",
    "Patagonia",
    "Vietnam",
    "the Scottish Highlands",
    "Marrakech",
    "Banff",
    "Crete",
    "Seoul",
    "New Zealand",
]
PLACES_ZH = [
    "云南",
    "西藏",
    "日本京都",
    "桂林",
    "成都",
    "新疆",
    "海南三亚",
    "泰国清迈",
    "冰岛",
    "张家界",
]
LANGS_EN = ["French", "Spanish", "German", "Chinese", "Japanese", "Portuguese", "Korean"]
LANGS_ZH = ["英文", "日文", "法语", "德语", "韩语", "西班牙语"]


def name(rng: Rng, lang: str) -> str:
    if lang == "zh":
        return rng.choice(ZH_SURNAME) + rng.choice(ZH_GIVEN)
    return f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"


def first(rng: Rng, lang: str) -> str:
    return rng.choice(ZH_SURNAME) + rng.choice(ZH_GIVEN) if lang == "zh" else rng.choice(EN_FIRST)


def _lang_pick(en: list[str], zh: list[str]):
    def pick(rng: Rng, lang: str) -> str:
        return rng.choice(zh if lang == "zh" else en)

    return pick


FILLERS = {
    "card": card,
    "exp": card_exp,
    "cvv": cvv,
    "luhnfail": luhn_fail,
    "iban": iban_value,
    "ssn": ssn_value,
    "cnid": cnid_value,
    "passport": passport,
    "phone": phone,
    "email": email,
    "address": address,
    "routing": routing,
    "account": account,
    "cnbank": cn_bankcard,
    "sortcode": sort_code,
    "mrn": mrn,
    "dob": dob,
    "awskey": aws_key,
    "awssecret": aws_secret,
    "jwt": jwt,
    "pem": pem,
    "ghp": ghp,
    "sklive": sk_live,
    "xoxb": xoxb,
    "pw": secret_pw,
    "conn": conn_str,
    "token": api_token,
    "money": money,
    "pct": pct,
    "quarter": quarter,
    "salary": salary,
    "empid": emp_id,
    "rating": rating,
    "codename": codename,
    "order": order_no,
    "n": number,
    "year": year,
    "name": name,
    "first": first,
    "company": _lang_pick(EN_COMPANIES, ZH_COMPANIES),
    "city": _lang_pick(EN_CITIES, ZH_CITIES),
    "diagnosis": _lang_pick(EN_DIAGNOSES, ZH_DIAGNOSES),
    "med": _lang_pick(MEDICATIONS, MEDICATIONS),
    "rel": _lang_pick(EN_RELATIONS, ZH_RELATIONS),
    "product": _lang_pick(EN_PRODUCTS, ZH_PRODUCTS),
    "dish": _lang_pick(DISHES_EN, DISHES_ZH),
    "place": _lang_pick(PLACES_EN, PLACES_ZH),
    "tolang": _lang_pick(LANGS_EN, LANGS_ZH),
}


def small(rng: Rng, lang: str) -> str:
    return str(rng.randint(2, 12))


def price(rng: Rng, lang: str) -> str:
    return f"{rng.randint(9, 2999)}元" if lang == "zh" else f"${rng.randint(9, 2999)}"


def month(rng: Rng, lang: str) -> str:
    return f"{rng.randint(1, 12)}月" if lang == "zh" else rng.choice(MONTHS)


def future_date(rng: Rng, lang: str) -> str:
    y, m, d = rng.randint(2027, 2036), rng.randint(1, 12), rng.randint(1, 28)
    return f"{y}年{m}月{d}日" if lang == "zh" else f"{y}-{m:02d}-{d:02d}"


def bic(rng: Rng, lang: str) -> str:
    return (
        alnum(rng, 4, string.ascii_uppercase)
        + rng.choice(["DE", "GB", "FR", "NL", "IT"])
        + alnum(rng, 2, string.ascii_uppercase + string.digits)
    )


def biz_mail(rng: Rng, lang: str) -> str:
    role = rng.choice(["support", "press", "info", "sales", "careers", "help", "service"])
    domain = rng.choice(
        [
            "northwind-analytics.com",
            "brightwave.io",
            "helixbio.com",
            "orbitalfoods.co",
            "huaxin-tech.cn",
            "yuanhang56.com",
            "example.org",
            "citylibrary.gov",
        ]
    )
    return f"{role}@{domain}"


def biz_phone(rng: Rng, lang: str) -> str:
    return rng.choice(
        [
            f"400-{digits(rng, 3)}-{digits(rng, 4)}",
            f"1-800-{digits(rng, 3)}-{digits(rng, 4)}",
            f"(555) 01{digits(rng, 2)}",
            f"0{rng.randint(10, 99)}-{digits(rng, 8)}",
        ]
    )


FILLERS.update(
    small=small,
    price=price,
    month=month,
    pexp=future_date,
    bic=bic,
    bizmail=biz_mail,
    bizphone=biz_phone,
)


def openai_key(rng: Rng, lang: str) -> str:
    return rng.choice(["sk-proj-", "sk-"]) + alnum(
        rng, 48, string.ascii_letters + string.digits + "_-"
    )


def gcp_key(rng: Rng, lang: str) -> str:
    return "AIza" + alnum(rng, 35, string.ascii_letters + string.digits + "_-")


def azure_conn(rng: Rng, lang: str) -> str:
    account = rng.choice(["prodstore", "billingdata", "hrdocs", "mlartifacts"]) + digits(rng, 2)
    key = alnum(rng, 86, string.ascii_letters + string.digits + "+/") + "=="
    return (
        f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};"
        "EndpointSuffix=core.windows.net"
    )


FILLERS.update(openai=openai_key, gcpkey=gcp_key, azconn=azure_conn)
