"""Concept categories: confidential prose without identifiers or keywords, and the public
text that looks like it (digit-heavy text, questions about confidentiality, public facts).

Unlike templates.py (one template = one prompt), a row here is composed: 1 to ~25
sentences drawn from a category's sentence pool, each with fresh fillers, then written in
one of several styles (plain, chat, notes, e-mail, terse, with typos). Short rows are one
fragment of 5 words; long ones reach ~400 words and are of one kind throughout (every
sentence of a long confidential memo is confidential), so every window of them carries
the row's label. `ROLE` says which categories train sees and which are held out whole
(the out-of-template eval).

Sentence slots: the fillers of values.py plus the local ones in LOCAL below.
"""

# fmt: off
# ruff: noqa: E501

from __future__ import annotations

import random
import string

from values import FILLERS

Rng = random.Random


def _part(rng: Rng, lang: str) -> str:
    return rng.choice(["PX", "MB", "HX", "TQ", "R", "LN"]) + f"-{rng.randint(100, 9999)}{rng.choice(['', 'A', 'B', 'C2'])}"


def _unit_price(rng: Rng, lang: str) -> str:
    return (f"{rng.randint(1, 90)}.{rng.randint(10, 99)}元" if lang == "zh"
            else f"${rng.randint(0, 90)}.{rng.randint(10, 99)}")


def _volume(rng: Rng, lang: str) -> str:
    n = rng.choice([40, 120, 250, 600, 1200, 3000])
    return f"{n}万件" if lang == "zh" else f"{n:,}k units"


def _host(rng: Rng, lang: str) -> str:
    svc = rng.choice(["billing-core", "ledger", "risk-engine", "payroll", "auth-gw", "pricing-svc", "kyc-batch"])
    return f"{svc}.{rng.choice(['prod', 'prd2', 'int'])}.{rng.choice(['corp', 'lan', 'intra'])}"


def _func(rng: Rng, lang: str) -> str:
    return rng.choice(["score_applicant", "route_order", "price_quote", "detect_churn", "rank_bids", "settle_batch", "fraud_score"])


def _small(rng: Rng, lang: str) -> str:
    return str(rng.randint(2, 40))


def _ratio(rng: Rng, lang: str) -> str:
    return f"{rng.randint(4, 19)}.{rng.randint(0, 9)}x"


def _weekday(rng: Rng, lang: str) -> str:
    return rng.choice(["周一", "周二", "周三", "周四", "周五"] if lang == "zh" else ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"])


def _pow(rng: Rng, lang: str) -> str:
    b, e = rng.choice([2, 3, 7, 10, 12, 16]), rng.randint(10, 60)
    return f"{b}^{e} = {b ** e}"


def _hash(rng: Rng, lang: str) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice([7, 12, 40, 64])))


def _isbn(rng: Rng, lang: str) -> str:
    """An ISBN-13-shaped number; about a tenth of them carry the right check digit."""
    body = "978" + "".join(rng.choice(string.digits) for _ in range(9))
    check = (10 - sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body)) % 10) % 10
    last = check if rng.random() < 0.1 else (check + rng.randint(1, 9)) % 10
    return f"{body[:3]}-{body[3]}-{body[4:8]}-{body[8:]}-{last}"


def _bignum(rng: Rng, lang: str) -> str:
    return rng.choice([str(rng.randint(10**15, 10**19)), f"{rng.randint(1, 9)}.{rng.randint(100, 999)}e{rng.randint(9, 30)}",
                       " ".join(str(rng.randint(1000, 9999)) for _ in range(4))])


def _hotline(rng: Rng, lang: str) -> str:
    return rng.choice([f"1-800-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}", f"+44 20 {rng.randint(3000, 8999)} {rng.randint(1000, 9999)}",
                       f"400-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}", f"+1 (888) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}"])


def _rolemail(rng: Rng, lang: str) -> str:
    dom = rng.choice(["example.com", "contoso.com", "acme.org", "globex.com", "initech.io"])
    return f"{rng.choice(['press', 'support', 'info', 'careers', 'investors', 'help', 'media'])}@{dom}"


def _famous(rng: Rng, lang: str) -> str:
    en = ["Marie Curie", "Alan Turing", "Ada Lovelace", "Nelson Mandela", "Grace Hopper", "Tim Berners-Lee", "Katherine Johnson", "Steve Jobs", "Jack Ma", "Serena Williams"]
    zh = ["屠呦呦", "袁隆平", "钱学森", "鲁迅", "李白", "姚明", "杨利伟", "马云", "莫言", "苏轼"]
    return rng.choice(zh if lang == "zh" else en)


def _group(rng: Rng, lang: str) -> str:
    en = ["adults over 65", "pregnant women", "children under five", "people with type 2 diabetes", "smokers", "night-shift workers", "teenagers", "marathon runners"]
    zh = ["65岁以上的老人", "孕妇", "五岁以下儿童", "二型糖尿病患者", "吸烟者", "夜班工人", "青少年", "高血压人群"]
    return rng.choice(zh if lang == "zh" else en)


def _version(rng: Rng, lang: str) -> str:
    return f"{rng.randint(1, 14)}.{rng.randint(0, 30)}.{rng.randint(0, 12)}"


def _uuid(rng: Rng, lang: str) -> str:
    h = "".join(rng.choice("0123456789abcdef") for _ in range(32))
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


def _mac(rng: Rng, lang: str) -> str:
    return ":".join(f"{rng.randrange(256):02x}" for _ in range(6))


def _day(rng: Rng, lang: str) -> str:
    return f"{rng.randint(1, 28):02d}"


LOCAL = {"part": _part, "unit": _unit_price, "volume": _volume, "host": _host, "func": _func,
         "small": _small, "ratio": _ratio, "weekday": _weekday, "pow": _pow, "hash": _hash,
         "isbn": _isbn, "bignum": _bignum, "hotline": _hotline, "rolemail": _rolemail,
         "famous": _famous, "group": _group, "version": _version, "day": _day,
         "uuid": _uuid, "mac": _mac}

# Each category: label, role ("train": in train/eval/calib; "heldout": only in the out-of-
# template eval), and sentence pools per language. No confidential sentence names its own
# secrecy ("confidential", "internal", "do not share", 机密, 内部): the content is the signal.
CONCEPTS: dict[str, tuple[str, str, dict[str, list[str]]]] = {
    "unreleased_product": ("confidential", "train", {
        "en": [
            "The {product} successor gets a 6,000 mAh cell and we are moving launch to {month}.",
            "Final spec for the next {product}: {small} GB RAM, no headphone jack, price target {unit} below the current model.",
            "Marketing wants to reveal the foldable in {month}, but the hinge still fails after {small}k cycles.",
            "{codename} hardware freeze is {weekday}; the board revision uses part {part} from a new supplier.",
            "We're dropping the entry-level {product} next year and nobody outside the team knows.",
            "battery life on the prototype is only {small} hours, we need to fix that before anyone sees it",
            "The launch deck says {product} 3 will cost {unit} per month, which undercuts {company}.",
            "new model codename {codename}, ships {quarter}, two colours, slide 4 has the renders",
            "The chip for next year's {product} is our own design, first silicon came back {weekday}.",
            "We will announce the price cut on {product} only after the holiday quarter closes.",
            "prototype {part} overheats at {small} watts, engineering wants two more weeks",
            "Retail partners get samples of the {product} refresh on {month} {small}, press a week later.",
        ],
        "zh": [
            "新款{product}换成6000毫安电池，发布会推到{month}。",
            "下一代{product}的最终规格：{small}GB内存，取消耳机孔，定价比现款低{unit}。",
            "折叠屏原定{month}亮相，但铰链{small}千次开合后就坏。",
            "{codename}硬件冻结定在{weekday}，主板改用新供应商的{part}。",
            "明年入门版{product}直接砍掉，目前只有项目组知道。",
            "样机续航只有{small}小时，对外演示前必须解决",
            "发布会PPT写的{product}三代月费{unit}，比{company}便宜。",
            "新机代号{codename}，{quarter}上市，两种配色，渲染图在第4页",
            "明年{product}用的是我们自研芯片，第一批流片{weekday}回来了。",
            "零售渠道{month}拿到新品样机，媒体晚一周。",
        ],
    }),
    "manufacturing_yield": ("confidential", "heldout", {
        "en": [
            "Yield on line {small} dropped to {pct} after the {part} change, and we shipped anyway.",
            "The new fab's defect density is still {small} per wafer, far from what we told the customer.",
            "scrap rate for the {product} housing hit {pct} this week",
            "We're quietly reworking {volume} of the {product} batch because of a solder fault.",
            "Line {small} in {city} runs at {pct} OEE, the plan assumed 85%.",
            "Test escapes on {part} went up {small}x since the supplier switch.",
            "Only {pct} of the first lot of {product} passed burn-in.",
            "cost per good die is now {unit}, the board thinks it's half that",
        ],
        "zh": [
            "换了{part}之后{small}号线良率掉到{pct}，还是照常出货了。",
            "新厂每片晶圆缺陷还有{small}个，跟客户说的差很远。",
            "这周{product}外壳报废率到了{pct}",
            "{product}这批有{volume}因为焊接问题在悄悄返工。",
            "{city}工厂{small}号线综合效率只有{pct}，计划按85%算的。",
            "{product}首批老化测试只有{pct}通过。",
        ],
    }),
    "supplier_pricing": ("confidential", "train", {
        "en": [
            "{company} agreed to {unit} per unit for {volume} if we commit through {year}.",
            "Our landed cost for {part} is {unit}; the list price is three times that.",
            "The supplier will drop to {unit} if we sign before {month}, otherwise it stays at {unit2}.",
            "We pay {company} {money} a year for the cloud contract, {pct} below their rate card.",
            "freight rebate from {company} is {pct}, applies to all {quarter} shipments",
            "Best and final from the vendor: {unit} per seat, three-year term, no price escalator.",
            "{company} gave us a {pct} volume discount on {part} that they don't give anyone else.",
            "Compare the two quotes: {company} at {unit}, {company2} at {unit2}, both for {volume}.",
        ],
        "zh": [
            "{company}同意按每件{unit}供货{volume}，条件是签约到{year}年。",
            "{part}到岸成本是{unit}，标价是它的三倍。",
            "供应商说{month}前签约可以降到{unit}，否则维持{unit2}。",
            "我们每年付给{company}云服务费{money}，比报价单低{pct}。",
            "{company}给的运费返点是{pct}，{quarter}所有货都适用",
            "{company}给了我们{part}的{pct}批量折扣，别家拿不到这个价。",
            "对比两家报价：{company}每件{unit}，{company2}每件{unit2}，都是{volume}。",
        ],
    }),
    "customer_discount": ("confidential", "heldout", {
        "en": [
            "We gave {company} {pct} off list to keep the renewal, don't mention it to other accounts.",
            "The {company} deal closes at {money} over three years with a most-favoured-customer clause.",
            "Sales can go down to {unit} per seat for {company}, that's our floor.",
            "{company} pays {unit} per transaction, everyone else pays double.",
            "renewal for {company}: {money}, free premium support, 90-day termination right",
            "Approved exception: {company} gets the {product} bundle at {pct} discount until {year}.",
        ],
        "zh": [
            "为了续约给了{company}打{pct}折扣，别跟其他客户提。",
            "和{company}的合同三年{money}，带最惠客户条款。",
            "给{company}的报价最低可以到每席位{unit}，这是底线。",
            "{company}每笔交易只付{unit}，其他客户都是双倍。",
            "特批：{company}到{year}年前买{product}套餐享受{pct}折扣。",
        ],
    }),
    "proprietary_code": ("confidential", "train", {
        "en": [
            "Can you speed up this function?\n```python\ndef {func}(row):\n    # weights tuned on last year's defaults\n    s = 0.{small}*row.utilization + 1.{small}*row.late_payments\n    return s > 0.{small}\n```",
            "Here's our matching engine's core loop, it connects to {host}:\n```go\nfor o := range book.Bids() {{ if o.Px >= ask-{small} {{ fill(o) }} }}\n```",
            "Refactor {func} in our ranking service: it calls {host} and applies the margin rule (cost * 1.{small}).",
            "why does our {func} job on {host} time out after {small} minutes? stack trace below",
            "The anti-fraud rule set: block when velocity > {small} per hour and the BIN country differs from the IP country.",
            "Explain this SQL from our ledger: SELECT acct, SUM(amt) FROM postings WHERE book='{codename}' GROUP BY acct",
            "this is the pricing model we use for quotes, turn it into Rust: base * (1 + {small}/100) + risk_margin(region)",
            "Our recommendation algorithm boosts items with margin over {pct}; here is the scoring code, make it vectorized.",
        ],
        "zh": [
            "帮我优化这个函数：\n```python\ndef {func}(row):\n    s = 0.{small}*row.util + 1.{small}*row.late\n    return s > 0.{small}\n```",
            "这是我们撮合引擎的核心循环，连的是{host}，帮我看看有没有竞态。",
            "重构一下排序服务里的{func}，它调用{host}并按成本乘1.{small}加价。",
            "为什么{host}上的{func}任务跑{small}分钟就超时？下面是堆栈",
            "风控规则：每小时交易超过{small}笔且卡BIN国家和IP国家不同就拦截，帮我写成代码。",
            "我们报价用的定价模型：基价*(1+{small}/100)+区域风险溢价，帮我改成Go。",
        ],
    }),
    "proprietary_config": ("confidential", "heldout", {
        "en": [
            "Here are the production thresholds of our credit model: approve above 0.{small}, manual review between 0.3 and 0.{small}.",
            "The feature list and weights we ship to {host}: tenure 0.{small}, utilization -1.{small}, zip_risk 0.{small}.",
            "Our ad bidder's shading factor is 0.{small} and the floor is {unit}; rewrite the config loader.",
            "routing table for the trading gateway: venue A gets {pct} of flow below {unit}, rest to {company}",
            "The churn model flags anyone with more than {small} support tickets and a discount over {pct}.",
        ],
        "zh": [
            "这是我们信贷模型的线上阈值：0.{small}以上直接通过，0.3到0.{small}人工复核。",
            "下发到{host}的特征权重：在网时长0.{small}，额度使用率-1.{small}。",
            "我们广告出价的折扣系数是0.{small}，底价{unit}，帮我重写配置加载。",
            "流失模型：工单超过{small}个且折扣超过{pct}的客户都会被标记。",
        ],
    }),
    "incident_undisclosed": ("confidential", "train", {
        "en": [
            "Someone had access to the billing database for {small} days before we noticed; customers haven't been told.",
            "The outage on {weekday} was caused by our own migration script, but the status page says upstream provider.",
            "We found customer exports on a public bucket last night; legal wants to wait before notifying anyone.",
            "The attacker used a contractor's VPN account and pulled {volume} records; the regulator has not been informed.",
            "postmortem draft: root cause was a deleted index in {host}, {small}k orders lost, not announced yet",
            "Ransomware hit the {city} plant on {weekday}; production is down and we're telling partners it's maintenance.",
            "We paid the researcher {money} to keep quiet about the auth bypass until the patch ships.",
            "{small} of our admin tokens leaked in a support ticket, rotation is still running",
        ],
        "zh": [
            "有人在计费数据库里待了{small}天我们才发现，客户还不知道。",
            "{weekday}的故障是我们自己的迁移脚本导致的，但状态页写的是上游服务商。",
            "昨晚发现客户导出文件在公开的存储桶里，法务说先别通知。",
            "攻击者用外包人员的VPN账号拉走了{volume}记录，还没上报监管。",
            "复盘草稿：{host}的索引被误删，丢了{small}千个订单，尚未对外说明",
            "{city}工厂{weekday}中了勒索病毒，停产了，对合作方说是例行检修。",
        ],
    }),
    "trading_breach": ("confidential", "heldout", {
        "en": [
            "Desk {small} ran {money} over its VaR limit on {weekday} and risk hasn't escalated it.",
            "The rates book lost {money} on the unhedged position; the monthly report shows it as flat.",
            "{name} kept trading after the stop-loss triggered, exposure peaked at {money}.",
            "We breached the counterparty limit with {company} three times this quarter, nobody filed the exception.",
            "intraday delta on the FX desk hit {money}, limit is a third of that",
        ],
        "zh": [
            "{small}号交易台{weekday}超出VaR限额{money}，风控还没上报。",
            "利率账簿未对冲头寸亏了{money}，月报上显示持平。",
            "{name}触发止损后还在交易，敞口最高到{money}。",
            "这个季度对{company}的交易对手限额超了三次，没人提交例外申请。",
        ],
    }),
    "deal_room": ("confidential", "train", {
        "en": [
            "{company}'s EBITDA in the data room is {money}; we're bidding {ratio} and the board votes {weekday}.",
            "Management presentation from {company}: churn is {pct}, much worse than their public filings imply.",
            "Our walk-away price for {company} is {money}, the banker thinks they'll accept {money2}.",
            "Q&A log item {small}: the target admits two pending lawsuits it hasn't disclosed.",
            "{codename} synergy model assumes {small}00 redundancies after the merger closes.",
            "the seller's advisors want exclusivity until {month}, our offer is {money} cash plus earn-out",
            "Diligence found that {company}'s largest customer is leaving next year.",
        ],
        "zh": [
            "数据室里{company}的EBITDA是{money}，我们按{ratio}出价，董事会{weekday}表决。",
            "{company}管理层演示：流失率{pct}，比公开披露的差很多。",
            "{company}的最高出价是{money}，投行估计对方会接受{money2}。",
            "问答清单第{small}条：标的承认有两起未披露的诉讼。",
            "{codename}协同模型假设合并后裁员{small}00人。",
            "尽调发现{company}最大的客户明年要走。",
        ],
    }),
    "legal_strategy": ("confidential", "heldout", {
        "en": [
            "We are authorised to settle the {company} case for up to {money}; opposing counsel must not learn that.",
            "Counsel thinks the emails from {name} would lose us the case if discovery reaches them.",
            "Our plan is to delay the filing until after {month} so the judge rotation works in our favour.",
            "the regulator's questions about {product} point at the test data we changed, draft a careful answer",
            "Litigation hold: {name}'s laptop is being imaged, don't tell the team why.",
        ],
        "zh": [
            "{company}案我们最多可以出{money}和解，不能让对方律师知道。",
            "律师认为{name}的邮件一旦被调取我们就会输。",
            "计划拖到{month}之后再起诉，换法官对我们有利。",
            "监管问的{product}问题指向我们改过的测试数据，帮我起草一个稳妥的回复。",
        ],
    }),
    "hr_case": ("confidential", "train", {
        "en": [
            "{name} is being let go on {weekday}; payroll should stop after the {small}th.",
            "{name} told me she's pregnant and asked to keep it between us for now.",
            "Three people complained about {name}'s behaviour at the offsite, HR opened a case.",
            "{name}'s review: misses deadlines, rating {rating}, no bonus this year.",
            "we're paying {name} {salary} to match the {company} offer, the rest of the team earns less",
            "{name} has been on medical leave since {month} for depression, cover his accounts",
            "Promotion list for {quarter}: {name} and {name2} get the senior title, {name3} doesn't.",
        ],
        "zh": [
            "{name}{weekday}被辞退，工资发到{small}号为止。",
            "{name}跟我说她怀孕了，让我先别告诉别人。",
            "团建时有三个人投诉{name}的行为，人事已经立案。",
            "{name}的绩效：经常拖延，评分{rating}，今年没有奖金。",
            "为了留住{name}给他涨到{salary}，比组里其他人都高",
            "{name}从{month}开始因为抑郁症休病假，他的客户先由你跟",
        ],
    }),
    # ------------------------------------------------------------ public (hard negatives)
    "digits_math": ("public", "train", {
        "en": [
            "Check my arithmetic: {pow}.",
            "Is {bignum} divisible by 7?",
            "Write a function that prints the first {small} Fibonacci numbers; 12586269025 should be the 50th.",
            "Convert {bignum} to scientific notation.",
            "What is 2^64? I got 18446744073709551616.",
            "The speed of light is 299792458 m/s and Avogadro's number is 6.02214076e23.",
            "Sort these: 4532 0151 1283 0367, 9781 4028 9462 6, 1000 0000 0000 0007.",
            "Sum of squares from 1 to {small} is what?",
            "Pi to 30 digits is 3.141592653589793238462643383279, memorise it with me.",
            "{small} factorial equals what? Show the steps.",
        ],
        "zh": [
            "帮我验算：{pow}。",
            "{bignum}能被7整除吗？",
            "2的64次方是多少？我算的是18446744073709551616。",
            "把{bignum}写成科学计数法。",
            "圆周率前30位是3.141592653589793238462643383279。",
            "1到{small}的平方和是多少？",
        ],
    }),
    "digits_ids": ("public", "heldout", {
        "en": [
            "The commit {hash} broke the build, can you explain the diff?",
            "Is ISBN {isbn} valid? The library system rejects it.",
            "My order {order} hasn't shipped yet, how do I ask the shop politely?",
            "sha256 of the release tarball is {hash}, how do I verify it on Windows?",
            "Tracking number {bignum} shows no updates for a week.",
            "Cite the paper with DOI 10.{small}48/arXiv.2401.{small}0{small}.",
        ],
        "zh": [
            "提交{hash}把构建搞坏了，帮我看看改了什么。",
            "ISBN {isbn}是有效的吗？图书馆系统不认。",
            "我的订单{order}还没发货，催卖家用什么措辞好？",
            "发布包的sha256是{hash}，在Windows上怎么校验？",
            "快递单号{bignum}一周没有更新了。",
        ],
    }),
    "confidentiality_questions": ("public", "train", {
        "en": [
            "What counts as a trade secret under US law?",
            "Is an NDA still enforceable after the employee leaves?",
            "How should a small company classify confidential documents?",
            "Explain the difference between confidential and privileged information in litigation.",
            "What does GDPR say about processing health data?",
            "Write a policy paragraph on handling internal-only information.",
            "Can my employer read my work e-mail?",
            "What is insider trading and how do blackout periods work?",
        ],
        "zh": [
            "商业秘密在法律上怎么认定？",
            "员工离职后保密协议还有效吗？",
            "小公司应该如何对机密文件分级？",
            "个人信息保护法对健康数据有什么规定？",
            "帮我写一段关于内部信息管理的制度条款。",
            "什么是内幕交易？静默期是怎么回事？",
        ],
    }),
    "privacy_law_cases": ("public", "heldout", {
        "en": [
            "Summarise the Schrems II ruling and what it means for data transfers.",
            "Which fines has the CNIL issued under GDPR, roughly?",
            "Under HIPAA, when may a hospital disclose records without consent?",
            "How does CCPA define the sale of personal information?",
            "What remedies exist for trade-secret misappropriation in the EU?",
        ],
        "zh": [
            "总结一下Schrems II判决对数据跨境的影响。",
            "根据HIPAA，医院什么情况下可以不经同意披露病历？",
            "加州消费者隐私法怎么定义出售个人信息？",
            "欧盟对侵犯商业秘密有哪些救济手段？",
        ],
    }),
    "public_bio": ("public", "train", {
        "en": [
            "{famous} is best known for work that changed computing; write a short bio for a school poster.",
            "{company} was founded in {year} and is headquartered in {city}; summarise its public history.",
            "Give me three facts about {famous}'s early life.",
            "{company}'s annual report says revenue grew {pct} last year; explain what drove it.",
            "Write a LinkedIn-style summary of {famous}'s career.",
        ],
        "zh": [
            "{famous}因为什么出名？帮我写一段给学生看的简介。",
            "{company}成立于{year}年，总部在{city}，总结一下它的公开发展历程。",
            "说三个关于{famous}早年的事。",
            "{company}年报说去年营收增长{pct}，解释一下原因。",
        ],
    }),
    "published_contact": ("public", "train", {
        "en": [
            "Our customer service line is {hotline}, open weekdays 9 to 5.",
            "For press enquiries write to {rolemail}.",
            "Add this footer to the website: call {hotline} or e-mail {rolemail}.",
            "Is {hotline} the official support number of {company}?",
        ],
        "zh": [
            "客服热线{hotline}，工作日9点到17点。",
            "媒体垂询请发邮件至{rolemail}。",
            "网站底部加上：咨询电话{hotline}，邮箱{rolemail}。",
        ],
    }),
    "group_health": ("public", "train", {
        "en": [
            "How much exercise is recommended for {group}?",
            "What are common side effects of {med} in {group}?",
            "Is {diagnosis} more common in {group}?",
            "Write a leaflet on healthy sleep for {group}.",
            "Which vaccines are recommended for {group}?",
        ],
        "zh": [
            "{group}每周建议运动多少？",
            "{group}服用{med}常见的副作用有哪些？",
            "{diagnosis}在{group}中更常见吗？",
            "帮我写一份给{group}的健康睡眠宣传单。",
        ],
    }),
    "long_public": ("public", "train", {
        "en": [
            "The Great Wall was built over many centuries by different dynasties.",
            "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
            "{city} is known for its museums, its river walks and its food markets.",
            "The recipe calls for flour, butter and a pinch of salt, mixed until crumbly.",
            "In {year} the city council opened a new library with {small} reading rooms.",
            "Regular backups are the simplest protection against data loss.",
            "The train leaves at {small}:15 and the journey takes about two hours.",
            "Our team meeting moved to Thursday because of the public holiday.",
            "The novel follows a family across three generations in a small fishing town.",
            "Interest rates affect mortgages, savings and the value of currencies.",
            "{company} published its annual sustainability report last week.",
            "Most houseplants need bright indirect light and water once a week.",
            "The football season starts in {month} and ends in late spring.",
            "A good README explains how to install, run and test the project.",
            "The museum's new exhibition covers {small} centuries of textile design.",
        ],
        "zh": [
            "长城是历代王朝在很多个世纪里修建起来的。",
            "光合作用把光、水和二氧化碳变成糖和氧气。",
            "{city}以博物馆、河边步道和美食市场闻名。",
            "做法是面粉加黄油和一点盐，搓成碎屑状。",
            "{year}年市里新开了一座有{small}个阅览室的图书馆。",
            "定期备份是防止数据丢失最简单的办法。",
            "火车{small}点15分出发，大约两个小时到。",
            "因为放假，团队例会改到周四。",
            "这部小说讲的是一个渔村家庭三代人的故事。",
            "利率会影响房贷、储蓄和汇率。",
            "大多数室内植物需要明亮的散射光，每周浇一次水。",
            "好的说明文档要写清楚怎么安装、运行和测试。",
        ],
    }),
    # ------------------------------------------- more trained confidential categories
    # Siblings of the held-out ones in kind (a company's own unpublished facts, a private
    # person's situation), none in topic or wording: the concept has to carry over.
    "financials_unreported": ("confidential", "train", {
        "en": [
            "Revenue for the quarter closed at {money}, {pct} under the guidance we gave in {month}.",
            "We will miss the {quarter} target by about {money}; the board sees the numbers before the earnings call.",
            "Gross margin slipped to {pct} this quarter and the analysts still expect growth.",
            "Cash runway is down to {small} months unless the bank extends the credit line.",
            "Preliminary close: operating loss of {money}, mostly from the {city} expansion.",
            "our forecast for next year assumes {pct} growth, the plan we show investors says double that",
            "The {product} business lost {money} last year, which the segment report hides inside services.",
            "We're restating two quarters because revenue from {company} was booked too early.",
            "Bookings this month are {money}, half of what the sales team promised.",
            "Draft of the earnings release: EPS of {small} cents against a consensus of {small2}.",
            "Free cash flow turns negative in {quarter} if the launch slips again.",
            "Headline numbers before the audit committee meets: revenue {money}, net loss {money2}.",
        ],
        "zh": [
            "本季度收入{money}，比{month}给出的指引低{pct}。",
            "{quarter}目标要差{money}左右，财报电话会之前先报董事会。",
            "这个季度毛利率降到{pct}，分析师还以为在增长。",
            "如果银行不续授信，现金只够撑{small}个月。",
            "初步结账：经营亏损{money}，主要是{city}扩张造成的。",
            "{product}业务去年亏了{money}，分部报告里把它算进了服务收入。",
            "因为{company}那笔收入确认太早，前两个季度要重述。",
            "本月新签合同{money}，只有销售承诺的一半。",
            "业绩预告草稿：每股收益{small}分，市场预期{small2}分。",
            "新品再延期的话，{quarter}自由现金流就转负了。",
        ],
    }),
    "strategy_plans": ("confidential", "train", {
        "en": [
            "The board approved closing the {city} office in {month}; staff will hear about it the week before.",
            "We're exiting the consumer market next year and folding {product} into the enterprise suite.",
            "Plan for {year}: sell the logistics unit to {company} and use the cash for buybacks.",
            "The reorganisation puts sales and support under {name}, announcement planned for {quarter}.",
            "we will raise prices on all plans by {pct} in {month}, customers get thirty days notice",
            "Leadership decided to stop investing in the {city} data centre and move everything to {company}.",
            "{codename} is our plan to launch in Japan before any competitor knows we have a team there.",
            "Next year's budget cuts marketing by {money} and freezes hiring outside engineering.",
            "We intend to bid for {company}'s retail business once their restructuring is announced.",
            "The chief executive steps down after the {quarter} results; the successor is already chosen.",
            "we're moving assembly of {product} out of {city} by {year}, suppliers haven't been told",
        ],
        "zh": [
            "董事会批准{month}关闭{city}办公室，员工提前一周才会知道。",
            "明年退出消费者市场，{product}并入企业版套件。",
            "{year}年计划：把物流业务卖给{company}，现金用于回购。",
            "组织调整后销售和客服合并由{name}负责，计划{quarter}宣布。",
            "{month}起所有套餐涨价{pct}，提前三十天通知客户。",
            "管理层决定不再投入{city}数据中心，全部迁到{company}。",
            "{codename}的目标是抢在竞争对手发现之前在日本上线。",
            "明年预算市场费用砍掉{money}，除研发外冻结招聘。",
            "总裁会在{quarter}业绩公布后卸任，接班人已经定了。",
            "{year}年前把{product}的组装从{city}搬走，供应商还不知道。",
        ],
    }),
    "research_unpublished": ("confidential", "train", {
        "en": [
            "The phase II trial of {codename} missed its primary endpoint; the readout goes out in {month}.",
            "Our new battery chemistry holds {pct} capacity after {small}00 cycles, and the patent isn't filed yet.",
            "Lab results: compound {part} cut tumour growth by {pct} in mice, the paper is still a draft.",
            "The recommender experiment lifted revenue per user by {pct}; it ships with the next release.",
            "we found that the {product} sensor drifts {small} percent in cold weather, the brochure still says otherwise",
            "Benchmark of our unreleased model against {company}'s: we win on {small} of {small2} tasks.",
            "The prototype alloy cracked in fatigue testing at {small}k cycles; the grant report says it passed.",
            "Preliminary data show our generic is bioequivalent; we file with the regulator in {quarter}.",
            "The routing algorithm that cut delivery times by {pct} is ours alone, the patent filing goes in next month.",
            "Field test in {city}: the new seed variety yields {pct} more, results go into the harvest report in {month}.",
        ],
        "zh": [
            "{codename}的二期临床没有达到主要终点，{month}才会公布。",
            "新电池材料循环{small}00次后容量还有{pct}，专利还没申请。",
            "化合物{part}在小鼠身上让肿瘤缩小{pct}，论文还在写。",
            "推荐算法实验让人均收入提升了{pct}，准备下个版本上线。",
            "我们发现{product}的传感器在低温下漂移{small}%，宣传册还是原来的说法。",
            "我们未发布的模型和{company}的对比：{small2}项任务里赢了{small}项。",
            "样品合金{small}千次疲劳测试就裂了，结题报告写的是通过。",
            "新路径算法把配送时间缩短了{pct}，专利下个月才提交。",
        ],
    }),
    "security_weakness": ("confidential", "train", {
        "en": [
            "Our admin portal still accepts the default password on {small} of the branch routers.",
            "The mobile app ships the signing key inside the APK and nobody has rotated it since {year}.",
            "pen test found we can read any customer's invoices by changing the id in the URL, fix not scheduled",
            "Backups of {host} have not been restored in {small} months and the restore script is broken.",
            "The VPN concentrator in {city} runs firmware with a known remote exploit; patching waits for the change freeze.",
            "Anyone on the guest Wi-Fi can reach the payroll server on port 445.",
            "We turned off MFA for the finance team in {month} after complaints and never turned it back on.",
            "The bucket with call recordings allows listing from any authenticated cloud account.",
            "logging on {host} writes full request bodies including passwords, the ticket has been open since {month}",
            "Our SSO setup lets a contractor account escalate to global admin.",
        ],
        "zh": [
            "{small}台分支路由器的管理后台还在用默认密码。",
            "手机App里直接打包了签名密钥，从{year}年到现在没换过。",
            "渗透测试发现改URL里的编号就能看任何客户的发票，修复还没排期",
            "{host}的备份{small}个月没做过恢复演练，恢复脚本是坏的。",
            "{city}的VPN网关固件有已知远程漏洞，要等变更冻结结束才能打补丁。",
            "访客WiFi可以直接访问工资服务器的445端口。",
            "{month}因为财务部嫌麻烦关掉了他们的多因素认证，一直没恢复。",
            "{host}的日志把完整请求体连密码一起写进去了，工单从{month}开到现在",
        ],
    }),
    "partner_negotiation": ("confidential", "train", {
        "en": [
            "{company} wants exclusive distribution rights in Asia; we'll concede that if they drop the minimum volume clause.",
            "We're talking to {company} and {company2} in parallel about the licence, neither knows about the other.",
            "Our opening position in the joint venture talks is a {pct} stake and two board seats.",
            "The licensing fee we can live with is {money} a year; start the conversation at double.",
            "{name} from {company} hinted they'd accept a royalty of {pct} if we sign by {month}.",
            "If the {company} partnership falls through, plan B is to build the integration ourselves by {quarter}.",
            "term sheet for the co-marketing deal: {money} upfront, revenue share {pct}, three years",
            "They asked for source code escrow; we can agree if the escrow agent sits in {city}.",
        ],
        "zh": [
            "{company}想要亚洲的独家分销权，如果他们取消最低采购量条款我们就让步。",
            "我们在同时和{company}、{company2}谈授权，双方都不知道对方。",
            "合资谈判我们开价是占股{pct}加两个董事席位。",
            "授权费我们能接受的是每年{money}，开口先报两倍。",
            "{company}的{name}暗示如果{month}前签约，{pct}的分成他们可以接受。",
            "联合营销协议条款：预付{money}，收入分成{pct}，期限三年",
        ],
    }),
    "fundraising": ("confidential", "train", {
        "en": [
            "Series C term sheet: {money} pre-money, {company} leads, closing expected in {month}.",
            "We have {small} months of cash and the bridge round from existing investors is {money}.",
            "The listing window we're aiming for is {quarter}; bankers think the valuation lands around {money}.",
            "Two investors passed last week because of the retention numbers; the next meeting is {weekday}.",
            "cap table after this round: founders {pct}, option pool {small}%, new investor the rest",
            "We're selling secondary shares to {company} at a price below the last round.",
        ],
        "zh": [
            "C轮条款：投前估值{money}，{company}领投，预计{month}交割。",
            "现金还能撑{small}个月，老股东的过桥融资是{money}。",
            "我们瞄准{quarter}上市窗口，投行估值在{money}左右。",
            "上周两家投资人因为留存数据没投，下一次见面在{weekday}。",
            "这轮之后的股权结构：创始人{pct}，员工期权池{small}%，剩下是新投资人",
        ],
    }),
    "audit_tax": ("confidential", "train", {
        "en": [
            "The auditors flagged {money} of revenue recognised before delivery; we have until {month} to respond.",
            "Our transfer-pricing position in {city} would not survive an audit, the advisers put the exposure at {money}.",
            "Inventory in the {city} warehouse is overstated by about {money} according to the stock count.",
            "we moved {money} of expenses into next quarter to hit the number, the controller signed off",
            "The tax authority's letter asks about {year}; roughly {money} is at stake.",
            "Expense claims from the {city} team include {money} of personal travel, approved by {name}.",
        ],
        "zh": [
            "审计发现{money}的收入在交付前就确认了，{month}前要回复。",
            "我们在{city}的转让定价经不起稽查，顾问估计风险敞口{money}。",
            "盘点显示{city}仓库的库存多记了大约{money}。",
            "为了完成指标把{money}费用挪到下个季度，财务总监签了字",
            "{city}团队的报销里有{money}是私人旅行，{name}批的。",
        ],
    }),
    "client_private": ("confidential", "train", {
        "en": [
            "{name} has {money} in savings with us and asked whether to move it before the divorce is final.",
            "The tenant in flat {small}, {name}, is {small2} months behind on rent after losing her job.",
            "{name}'s son went into rehab last week, the family asked us to postpone the meeting.",
            "Our client {name} is quietly selling his stake in {company} before the lock-up ends.",
            "{name} called again about the debt collectors; she is raising three kids alone.",
            "note from the branch: {name} withdraws {money} cash every Friday, compliance wants to know why",
            "{name} is having chemotherapy and asked that only her manager knows.",
            "The applicant {name} was declined because of a county court judgment from {year}.",
        ],
        "zh": [
            "{name}在我们这有{money}存款，问离婚判决前要不要转出去。",
            "{small}号房的租户{name}失业后已经欠了{small2}个月房租。",
            "{name}的儿子上周进了戒毒所，家属让我们把会面推迟。",
            "我们的客户{name}在解禁前悄悄减持{company}的股份。",
            "{name}又打电话说催收的事，她一个人养三个孩子。",
            "网点反馈：{name}每周五取现{money}，合规部想知道原因",
            "{name}正在化疗，只希望她的直属领导知道。",
        ],
    }),
    # ------------------------------------------------ more trained public categories
    # Look-alikes of the confidential ones above: the same topics as public knowledge,
    # third-party reports, general how-tos, numbers that identify nothing, everyday work.
    "digits_data": ("public", "train", {
        "en": [
            "The sensor logged 21.4, 21.9, 22.3 and 23.0 °C between 06:00 and 09:00.",
            "Upgrade from version {version} to {version2}: what changed in the changelog?",
            "My marathon splits were 5:02, 5:10, 5:07 and 4:58 per km; am I slowing down?",
            "Parse this log line: 2024-03-{day} 14:22:07,481 INFO worker-{small} processed 1532 items in 0.84 s.",
            "Convert 1,250,000 square feet to square metres.",
            "Which landmark is at the coordinates 48.8584, 2.2945?",
            "The team scored 102, 97, 110 and 88 points in the last four games; what's the average?",
            "Population of {city} grew from 1,204,000 in 2010 to 1,388,500 in 2020; give the annual growth rate.",
            "Plot y = 3x^2 - 12x + 7 for x from -5 to 5.",
            "The share closed at 187.32, up 2.14 (1.16%); how is that percentage computed?",
            "Is 2,147,483,647 prime? It's the largest 32-bit signed integer.",
            "CPU readings: 34%, 41%, 97%, 99%, 38%; which ones look like a spike?",
            "Round 0.000345678 to three significant figures.",
            "The flight leaves at 07:45 and lands at 13:20 local time, six hours behind; how long is it?",
            "Why does the log show request id {uuid} twice in one second?",
            "Convert the colour #1f6feb to RGB and suggest a darker shade.",
            "The stack trace ends at 0x7ffd5e8c3a10 in libc; what does that address tell me?",
            "My router lists a device with MAC {mac}; how do I find out which gadget it is?",
            "Is 2001:db8:85a3::8a2e:370:7334 a valid IPv6 address?",
            "The model number on the fridge is RF28R7351SR; where do I find its manual?",
        ],
        "zh": [
            "传感器在6点到9点之间记录到21.4、21.9、22.3和23.0度。",
            "从{version}升级到{version2}，更新日志里改了什么？",
            "解析这行日志：2024-03-{day} 14:22:07,481 INFO worker-{small} 处理1532条用时0.84秒。",
            "125万平方英尺是多少平方米？",
            "坐标39.9087, 116.3975是哪里？",
            "球队最近四场得分102、97、110、88，平均多少？",
            "{city}人口从2010年的120.4万增长到2020年的138.85万，年均增长率是多少？",
            "画出y = 3x² - 12x + 7在-5到5之间的图像。",
            "股票收盘187.32，涨2.14（1.16%），这个百分比怎么算的？",
            "把0.000345678保留三位有效数字。",
            "日志里同一秒出现了两次请求ID {uuid}，为什么？",
            "把颜色#1f6feb换成RGB，再推荐一个深一点的。",
            "堆栈最后停在libc的0x7ffd5e8c3a10，这个地址说明什么？",
            "路由器里有个设备MAC是{mac}，怎么知道是哪台？",
            "冰箱型号是RF28R7351SR，说明书在哪下载？",
        ],
    }),
    "law_general": ("public", "train", {
        "en": [
            "How long does a landlord have to return a security deposit in most US states?",
            "What is the difference between a warranty and a guarantee under UK consumer law?",
            "Explain what a non-compete clause is and where courts refuse to enforce it.",
            "When does a listed company have to publish a profit warning?",
            "What are the basic rules of overtime pay for salaried employees?",
            "How does copyright apply to code written with an AI assistant?",
            "What does force majeure mean in a supply contract?",
            "Can a shop refuse a refund on sale items?",
            "Summarise how antitrust law treats price fixing between competitors.",
            "Which export controls apply to shipping encryption software abroad?",
            "How do I register a trademark for a small bakery?",
        ],
        "zh": [
            "房东一般多久之内要退还押金？",
            "劳动合同里的竞业限制条款在哪些条件下无效？",
            "上市公司什么时候必须发布业绩预警？",
            "加班费的计算标准是什么？",
            "用AI写的代码有著作权吗？",
            "合同里的不可抗力条款是什么意思？",
            "商店可以拒绝给打折商品退货吗？",
            "反垄断法怎么处理竞争对手之间的价格串通？",
            "小面包店怎么注册商标？",
        ],
    }),
    "business_howto": ("public", "train", {
        "en": [
            "How do companies usually calculate gross margin?",
            "Write a template e-mail asking a supplier for a better price, with placeholders.",
            "What should a board pack for a quarterly meeting contain?",
            "Explain how a term sheet for a startup round is structured.",
            "What is a reasonable cash runway for a seed-stage company?",
            "Give me a checklist for a penetration test.",
            "How do clinical trial phases I, II and III differ?",
            "What does an auditor look for in revenue recognition?",
            "How should a company announce a price increase to its customers?",
            "Draft a generic press release template for a product launch.",
            "What is transfer pricing and why do tax authorities care about it?",
            "How do banks assess a loan application?",
        ],
        "zh": [
            "毛利率一般怎么计算？",
            "帮我写一封向供应商询价的邮件模板，用占位符。",
            "季度董事会材料通常包括哪些内容？",
            "创业公司融资的条款清单一般怎么构成？",
            "给我一份渗透测试的检查清单。",
            "临床试验一期、二期、三期有什么区别？",
            "审计师检查收入确认时关注什么？",
            "涨价应该怎么通知客户比较好？",
            "什么是转让定价？税务机关为什么关注它？",
            "银行一般怎么审核贷款申请？",
        ],
    }),
    "public_reports": ("public", "train", {
        "en": [
            "{company} reported quarterly revenue of {money} on {weekday}, beating analyst estimates.",
            "According to its press release, {company} will close its {city} plant next year.",
            "{company} published a postmortem of last month's outage, blaming a configuration change.",
            "The newspaper says {company} raised {money} in a round led by {company2}.",
            "{company} unveiled a new headset at its keynote today, shipping in {month}.",
            "Regulators fined {company} {money} last year, according to the public register.",
            "In its annual report, {company} lists a {pct} decline in European sales.",
            "{company}'s chief executive said in an interview that they plan to enter the Indian market.",
            "The published study found the drug lowered blood pressure by {pct} in adults.",
            "Summarise this news: {company} and {company2} announced a licensing partnership.",
        ],
        "zh": [
            "{company}{weekday}公布季度收入{money}，超出分析师预期。",
            "据新闻稿，{company}明年将关闭{city}工厂。",
            "{company}发布了上个月故障的复盘报告，原因是配置变更。",
            "报道称{company}完成{money}融资，由{company2}领投。",
            "{company}今天在发布会上推出新耳机，{month}开售。",
            "公开记录显示，监管部门去年对{company}罚款{money}。",
            "{company}年报显示欧洲销售额下降{pct}。",
            "帮我总结这条新闻：{company}和{company2}宣布授权合作。",
        ],
    }),
    "everyday_work": ("public", "train", {
        "en": [
            "Can you move the stand-up to 10:30 tomorrow?",
            "Write a friendly reminder that the kitchen will be cleaned on {weekday}.",
            "Help me word a thank-you note to the team for finishing the migration.",
            "How do I share my screen in a video call?",
            "Suggest icebreaker questions for a team offsite.",
            "Turn these bullet points into a weekly status update: tests green, docs updated, demo on {weekday}.",
            "What's a polite way to decline a meeting invite?",
            "Make this chat message sound less blunt: the build is broken again.",
            "Plan a two-hour workshop on writing good commit messages.",
            "The printer on the third floor is jammed, who should I ask?",
        ],
        "zh": [
            "明天的站会能改到10点半吗？",
            "写个提醒，{weekday}要清洁茶水间。",
            "帮我写一段感谢团队完成迁移的话。",
            "视频会议里怎么共享屏幕？",
            "团建破冰问题给我推荐几个。",
            "把这些要点整理成周报：测试通过，文档已更新，{weekday}演示。",
            "想婉拒一个会议邀请，该怎么说？",
            "三楼的打印机卡纸了，该找谁？",
        ],
    }),
}

STYLES_EN = ("plain", "plain", "chat", "notes", "email", "terse", "typos", "ask")
STYLES_ZH = ("plain", "plain", "chat", "notes", "email", "ask")
ASKS = {
    "en": ["Summarise this:", "Can you tighten this up?", "Turn this into a short update for the team:", "Translate to French:", "Is this clear enough?", "rewrite pls:"],
    "zh": ["帮我总结一下：", "帮我改得简洁点：", "整理成给团队的简报：", "翻译成英文：", "这样写清楚吗？"],
}


def slot_value(rng: Rng, slot: str, lang: str) -> str:
    base = slot.rstrip("0123456789")
    return (LOCAL.get(base) or FILLERS[base])(rng, lang)


def sentence(rng: Rng, pool: list[str], lang: str) -> str:
    template = rng.choice(pool)
    slots = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    return template.format(**{s: slot_value(rng, s, lang) for s in sorted(slots)})


def length_plan(rng: Rng) -> int:
    """Sentences per row: many short rows, some medium, a tail of long documents."""
    r = rng.random()
    if r < 0.5:
        return 1
    if r < 0.88:
        return rng.randint(2, 4)
    return rng.randint(6, 20)


def styled(rng: Rng, sentences: list[str], lang: str) -> str:
    style = rng.choice(STYLES_ZH if lang == "zh" else STYLES_EN)
    sep = "" if lang == "zh" else " "
    if style == "notes":
        return "\n".join(("- " if lang == "en" else f"{i + 1}. ") + s for i, s in enumerate(sentences))
    if style == "email":
        who = FILLERS["first"](rng, lang)
        if lang == "zh":
            return f"{who}你好，\n\n" + "".join(sentences) + "\n\n谢谢"
        return f"Hi {who},\n\n" + " ".join(sentences) + f"\n\nThanks,\n{FILLERS['first'](rng, lang)}"
    if style == "ask":
        return rng.choice(ASKS[lang]) + ("" if lang == "zh" else "\n") + sep.join(sentences)
    text = sep.join(sentences)
    if style == "chat":
        if lang == "zh":
            return text.replace("。", " ").strip() + rng.choice(["", "哈", "，怎么看", "～"])
        return text.lower().rstrip(".") + rng.choice(["", " lol", " thoughts?", " asap"])
    if style == "terse":
        return text.replace(" the ", " ").replace(" and ", " & ").replace("because", "bc")
    if style == "typos":
        words = text.split(" ")
        for _ in range(max(1, len(words) // 12)):
            i = rng.randrange(len(words))
            w = words[i]
            if len(w) > 3:
                j = rng.randrange(len(w) - 1)
                words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        return " ".join(words)
    return text


def sentences(rng: Rng, pool: list[str], count: int, lang: str) -> list[str]:
    """`count` sentences, each template used once per pass over the (shuffled) pool."""
    order: list[str] = []
    while len(order) < count:
        order += rng.sample(pool, len(pool))
    return [sentence(rng, [t], lang) for t in order[:count]]


def compose(rng: Rng, name: str, lang: str) -> str:
    """One row of category `name`: its sentences, its length, one style."""
    count = length_plan(rng)
    if name == "long_public":  # articles, stories, manuals: always a document
        count = rng.randint(8, 30)
    return styled(rng, sentences(rng, CONCEPTS[name][2][lang], count, lang), lang)


MIX_PUBLIC = ("long_public", "everyday_work", "public_reports", "business_howto", "law_general")
"""Public categories whose sentences surround one secret in a mixed row."""


def mix(rng: Rng, name: str, lang: str) -> str:
    """A short public text with one sentence of confidential category `name` at a random
    place, short enough for one window: a secret among public sentences is still a secret."""
    public = CONCEPTS[rng.choice(MIX_PUBLIC)][2][lang]
    filler = sentences(rng, public, rng.randint(1, 3) if lang == "zh" else rng.randint(2, 4), lang)
    filler.insert(rng.randint(0, len(filler)), sentence(rng, CONCEPTS[name][2][lang], lang))
    return ("" if lang == "zh" else " ").join(filler)


def bury(rng: Rng, name: str, lang: str) -> str:
    """A long public text with one sentence of confidential category `name` near its end
    (eval only): the router must read every window, not the first."""
    filler = sentences(rng, CONCEPTS["long_public"][2][lang], rng.randint(10, 22), lang)
    filler.insert(len(filler) - rng.randint(0, 2), sentence(rng, CONCEPTS[name][2][lang], lang))
    return ("" if lang == "zh" else " ").join(filler)
