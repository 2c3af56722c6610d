"""Health data: medical record numbers, and diagnoses or treatments next to a person
(my, patient, he/she, 我, 患者 ...). "Diabetes is common" is public; "my diabetes" is not."""

import re

from router.sensitivity.detector import AnyOf, Detector
from router.sensitivity.hints import FOLDS, SPACE, any_of, ci, exact, words

# An MRN hint: the key word, its separators, then a value run (`(?i)[A-Z0-9-]`, Python's folds
# included) that holds a digit, which the validator wants: "MRN stands for ..." has none.
_VALUE = f"[A-Za-z0-9{''.join(FOLDS.values())}-]*[0-9]"
MRN_HINT = any_of(
    ci(r"mrn|medical record (?:number|no\.?|#)") + rf"{SPACE}*[:#]?{SPACE}*{_VALUE}",
    exact("病历号", "住院号") + rf"{SPACE}*[:：]?{SPACE}*{_VALUE}",
)
MRN = Detector(
    "health",
    re.compile(
        r"(?i)\b(?:mrn|medical record (?:number|no\.?|#))\s*[:#]?\s*(?P<v>[A-Z0-9-]{5,})"
        r"|(?:病历号|住院号)\s*[:：]?\s*[A-Z0-9-]{5,}"
    ),
    lambda value: any(ch.isdigit() for ch in value),  # "MRN stands for ..." is not a number
    requires=(MRN_HINT,),
)
CONDITIONS = (
    r"(?i)\b(diagnosed with|diagnosis of|tested positive for|prescribed|hiv|aids|cancer|"
    r"chemotherapy|diabetes|depression|schizophrenia|bipolar|pregnan\w+|hepatitis|tumou?r|"
    r"dementia|alzheimer'?s|psychiatric|rehab|overdose|std)\b"
    r"|确诊|诊断为|患有|艾滋病|癌症|化疗|糖尿病|抑郁症|精神分裂|怀孕|肝炎|肿瘤|处方"
)
PERSON = re.compile(
    r"(?i)\b(my|i have|i've|i was|i got|he|she|his|her|him|patient|mr|mrs|ms|son|daughter|"
    r"wife|husband|mother|father|employee)\b|我的|我有|我得了|他|她|患者|病人|先生|女士|员工"
)
CONDITION_HINT = any_of(  # CONDITIONS without \b, word stems where the pattern varies
    ci(
        "diagnosed with|diagnosis of|tested positive for|prescribed|hiv|aids|cancer|chemotherapy"
        "|diabetes|depression|schizophrenia|bipolar|pregnan|hepatitis|tumo|dementia|alzheimer"
        "|psychiatric|rehab|overdose|std"
    ),
    exact("确诊", "诊断为", "患有", "艾滋病", "癌症", "化疗", "糖尿病", "抑郁症", "精神分裂",
          "怀孕", "肝炎", "肿瘤", "处方"),
)  # fmt: skip
PERSON_HINT = any_of(
    words(
        "my|i have|i've|i was|i got|he|she|his|her|him|patient|mr|mrs|ms|son|daughter|wife"
        "|husband|mother|father|employee"
    ),
    exact("我的", "我有", "我得了", "他", "她", "患者", "病人", "先生", "女士", "员工"),
)
DIAGNOSIS = Detector(
    "health",
    re.compile(CONDITIONS),
    context=PERSON,
    window=40,
    requires=(CONDITION_HINT, PERSON_HINT),
)
DETECTOR = AnyOf("health", (MRN, DIAGNOSIS))
