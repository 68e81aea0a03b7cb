"""Made-up identities: Chinese names, mobile numbers and local record numbers.

Names and phones exist only to prove that the pipeline drops ``phi: drop`` fields; the
record number (``mrn``) follows each center's local style.
"""

from __future__ import annotations

import numpy as np

SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = list(
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉梅林波斌宇浩凯鹏辉婷晨雪琳颖欣怡佳俊峰鑫宁晓文斌雅倩思远嘉豪子涵梓轩雨萱"
)
MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "157",
    "158",
    "159",
    "166",
    "177",
    "180",
    "181",
    "182",
    "186",
    "187",
    "188",
    "189",
    "191",
    "199",
]


def chinese_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` made-up Chinese names (surname + one or two given-name characters)."""
    s = np.array(SURNAMES)[rng.integers(0, len(SURNAMES), n)]
    g1 = np.array(GIVEN)[rng.integers(0, len(GIVEN), n)]
    g2 = np.array(GIVEN)[rng.integers(0, len(GIVEN), n)]
    two = rng.random(n) < 0.7
    return np.where(two, np.char.add(np.char.add(s, g1), g2), np.char.add(s, g1)).astype(object)


def mobile_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` 11-digit Chinese mobile numbers."""
    pre = np.array(MOBILE_PREFIXES)[rng.integers(0, len(MOBILE_PREFIXES), n)]
    rest = np.char.zfill(rng.integers(0, 10**8, n).astype(str), 8)
    return np.char.add(pre, rest).astype(object)


# local record-number styles: (prefix, digits)
MRN_STYLE = {"zcmu1": ("ZY", 8), "zju2": ("00", 8), "hzfph": ("20", 8)}


def record_numbers(rng: np.random.Generator, center: str, n: int) -> np.ndarray:
    """``n`` distinct local medical record numbers in the center's style
    (zcmu1 ``ZY01234567``; zju2 ten digits with leading zeros ``0012345678``;
    hzfph admission-year style ``2019034521``; other centers ``<ID>01234567``)."""
    prefix, digits = MRN_STYLE.get(center, (center[:2].upper(), 8))
    if n == 0:
        return np.array([], dtype=object)
    if center == "hzfph":
        years = rng.integers(10, 25, n)
        body = rng.choice(10**6, size=n, replace=False)
        out = np.char.add(np.char.add("20", np.char.zfill(years.astype(str), 2)), np.char.zfill(body.astype(str), 6))
        return out.astype(object)
    body = rng.choice(10**digits // 10 if prefix == "00" else 10**digits, size=n, replace=False)
    return np.char.add(prefix, np.char.zfill(body.astype(str), digits)).astype(object)
