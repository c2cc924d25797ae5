"""A small bilingual (Chinese, English) sentiment lexicon: the base model's only knowledge.

``sentiment_score(text)`` sums the weights of the lexicon entries found in the text
(longest match first for Chinese, words and two-word phrases for English), flips an
entry preceded by a negator (不, 没有, not, never, …), strengthens one preceded by an
intensifier (很, 非常, very, …) and weighs the clause after a contrast word (但是,
不过, but, …) more than the one before it. ``positive_probability`` turns the score
into a probability with a logistic curve: no sentiment word at all gives exactly 0.5,
an honest "I don't know".

The list is written by hand for reviews of products and services (food delivery,
shopping, apps, hotels): a few hundred common words and phrases, not a trained model.
"""

from __future__ import annotations

import math
import re

# Weight 2: strong, 1: ordinary, 0.5: weak or often used loosely.
_ZH_POSITIVE = {
    2.0: """
        好吃 很好吃 超好吃 太好吃 美味 可口 鲜美 赞 超赞 点赞 好评 五星 满分 完美 惊艳 一流 绝了
        非常满意 很满意 超满意 强烈推荐 值得推荐 良心 物超所值 超值 回购 必点 无可挑剔 棒极了
        太棒了 好极了 喜欢极了 爱了 力荐 最好吃 好喝 特别好 特别棒 非常好 非常棒 很棒 很赞
        完美无缺
        """,
    1.0: """
        不错 挺好 很好 棒 满意 喜欢 推荐 新鲜 香 很香 入味 正宗 地道 实惠 划算 便宜 分量足 量大
        量足 份量足 料足 快 很快 挺快 超快 神速 准时 及时 提前 速度快 送餐快 送得快 热乎 热乎乎
        热的 干净 卫生 精致 用心 贴心 周到 热情 礼貌 耐心 服务好 态度好 服务周到 辛苦了 辛苦
        谢谢 感谢 多谢 给力 靠谱 放心 舒服 舒适 方便 快捷 便捷 好用 流畅 稳定 清晰 漂亮 好看
        精美 高效 专业 省心 值得 不腻 爽口 清淡 酥脆 嫩 软糯 香脆 香甜 下饭 还会再来 会再来
        还会再点 下次还 再来 常来 常点 一直点 经常点 开心 高兴 愉快 惊喜 优秀 优质 完好 包装好
        包装精美 没问题 好样的 不赖 挺不错 蛮好 满好 很合口味 合口味 对味 口感好
        味道好 味道不错 性价比高 质量好 质量不错 正品 结实 耐用 推荐大家 好评如潮 很好用 超好用
        """,
    0.5: """
        好 还行 还好 凑合 及格 够吃 挺香 不难吃 能吃 好多 足够 可以 还可以
        """,
}

_ZH_NEGATIVE = {
    2.0: """
        难吃 很难吃 超难吃 太难吃 恶心 垃圾 差评 极差 很差 太差 超差 非常差 特别差 最差 差劲
        太差劲 失望 很失望 太失望 非常失望 再也不 再也不会 再也不点 不会再点 不会再来 坑 坑人
        骗人 欺骗 投诉 退款 拉黑 变质 馊了 臭了 发臭 有异味 吃坏 拉肚子 吐了 虫子 头发 苍蝇
        不新鲜 糟糕 糟透了 无语 无法下咽 难以下咽 恶劣 态度恶劣 气死 服了 呵呵 后悔 千万别
        不要点 别点 不推荐 慎点 差
        """,
    1.0: """
        不好 不好吃 一般 慢 很慢 太慢 超慢 特别慢 非常慢 好慢 送餐慢 送得慢 送餐太慢 迟到 超时
        晚了 晚点 太晚 等了 等太久 等了好久 等了很久 一个小时 两个小时 一个多小时 两个多小时
        半天 凉了 凉的 冷了 冰凉 都凉了 全凉了 洒了 撒了 漏了 洒出来 少了 漏送 少送 送错 错了 缺
        没送 没给 忘了 太咸 咸 太淡 没味 没味道 淡而无味 油腻 太油 太辣 太甜 硬 太硬 生的 没熟
        夹生 糊了 焦了 腥 贵 太贵 偏贵 不值 不值得 量少 太少 份量少 分量少 量太少 少得可怜
        太小 量不够 分量不够 不够吃 缩水 敷衍 态度差 态度不好 服务差 服务不好 不耐烦 不礼貌 脏
        不干净 不卫生 破了 坏了 碎了 难喝 问题 麻烦 不方便 卡顿 闪退 不满意 不满 郁闷 生气
        愤怒 讨厌 可惜 遗憾 不行 不怎么样 不太好 不咋地 不及格 上当 被骗 退货 质量差 假货 劣质
        离谱 越来越差 一次比一次差 下降 以后不 没有以前好 不如以前 没以前好 打电话 联系不上
        取消 催单 催了 不理 不回复 不送 拒收
        """,
    0.5: """
        凑合吧 勉强 还是算了 算了 有点 略 偏 稍微 一点点
        """,
}

_EN_POSITIVE = {
    2.0: """
        excellent amazing awesome fantastic perfect outstanding superb wonderful delicious love
        loved loves best brilliant exceptional incredible masterpiece highly-recommend must-try
        five-star
        """,
    1.0: """
        good great nice tasty fresh fast quick prompt timely friendly polite helpful kind clean
        happy pleased satisfied recommend recommended like liked enjoy enjoyed worth fine solid
        reliable comfortable convenient easy smooth beautiful pretty lovely fun cool impressive
        generous affordable cheap bargain efficient professional thanks thank grateful
        appreciate favorite favourite well yummy hot warm crispy juicy pleasant decent correct
        accurate useful stable
        """,
    0.5: """
        ok okay fair alright acceptable reasonable
        """,
}

_EN_NEGATIVE = {
    2.0: """
        terrible awful horrible disgusting worst hate hated garbage trash inedible scam refund
        disappointing disappointed pathetic rude never-again waste nasty revolting poisoning
        """,
    1.0: """
        bad poor slow late cold stale soggy bland salty greasy oily burnt raw undercooked
        overpriced expensive small tiny missing wrong broken dirty unfriendly unhelpful sorry
        problem issue complaint complain annoying angry upset unhappy dissatisfied mediocre
        boring useless buggy crash crashes crashed laggy confusing difficult hard spilled leaked
        cancel cancelled canceled delay delayed waited wait forever sick ill expired fake flimsy
        cheaply unreliable
        """,
    0.5: """
        meh average overcooked bit
        """,
}

# Phrases whose words would be misread one by one.
_EN_PHRASES = {
    "not bad": 1.0,
    "no problem": 1.0,
    "no complaints": 1.0,
    "not worth": -1.0,
    "waste of": -2.0,
    "never again": -2.0,
    "would not recommend": -2.0,
    "will order again": 1.0,
    "order again": 1.0,
    "too long": -1.0,
    "took forever": -2.0,
    "ice cold": -1.0,
    "on time": 1.0,
    "well done": 1.0,
    "highly recommend": 2.0,
    "must try": 2.0,
    "five star": 2.0,
    "one star": -2.0,
    "thumbs up": 1.0,
    "thumbs down": -1.0,
}

_ZH_NEGATORS = (
    "不太",
    "不够",
    "不怎么",
    "没有",
    "并不",
    "从不",
    "不是",
    "不",
    "没",
    "无",
    "别",
    "未",
    "勿",
)
_ZH_INTENSIFIERS = (
    "非常",
    "特别",
    "十分",
    "极其",
    "相当",
    "真的",
    "实在",
    "超级",
    "太",
    "很",
    "超",
    "真",
    "挺",
    "蛮",
    "巨",
    "贼",
    "最",
    "好",
)
_ZH_CONTRASTS = ("但是", "可是", "不过", "然而", "但", "却")
_EN_NEGATORS = {
    "not",
    "no",
    "never",
    "none",
    "nothing",
    "hardly",
    "barely",
    "without",
    "isn't",
    "wasn't",
    "aren't",
    "weren't",
    "don't",
    "doesn't",
    "didn't",
    "won't",
    "wouldn't",
    "can't",
    "cannot",
    "couldn't",
    "shouldn't",
    "nor",
}
_EN_INTENSIFIERS = {
    "very",
    "really",
    "so",
    "extremely",
    "super",
    "too",
    "incredibly",
    "absolutely",
    "totally",
    "quite",
    "truly",
    "most",
}
_EN_CONTRASTS = {"but", "however", "though", "although", "yet"}


def _load(groups: dict[float, str], sign: float) -> dict[str, float]:
    entries: dict[str, float] = {}
    for weight, words in groups.items():
        for word in words.split():
            entries[word.lower().replace("-", " ")] = sign * weight
    return entries


ZH_LEXICON: dict[str, float] = {**_load(_ZH_NEGATIVE, -1.0), **_load(_ZH_POSITIVE, 1.0)}
EN_LEXICON: dict[str, float] = {
    **_load(_EN_NEGATIVE, -1.0),
    **_load(_EN_POSITIVE, 1.0),
    **_EN_PHRASES,
}
_ZH_MAX = max(len(word) for word in ZH_LEXICON)
_EN_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_CJK = re.compile(r"[\u3400-\u9fff]")

# p(positive) = logistic(SCALE * score): one ordinary word gives about 0.69, two about 0.83.
SCALE = 0.8


def _zh_score(text: str) -> float:
    total, position, after_contrast, before, last_end = 0.0, 0, False, 0.0, 0
    while position < len(text):
        for contrast in _ZH_CONTRASTS:
            if text.startswith(contrast, position) and position > 0:
                after_contrast, before, total = True, total, 0.0
                break
        match = None
        for length in range(min(_ZH_MAX, len(text) - position), 0, -1):
            candidate = text[position : position + length]
            if candidate in ZH_LEXICON:
                match = candidate
                break
        if match is None:
            position += 1
            continue
        weight = ZH_LEXICON[match]
        # Only the characters since the previous match can negate or intensify this one.
        window = text[max(last_end, position - 3) : position]
        if any(window.endswith(n) or window[:-1].endswith(n) for n in _ZH_NEGATORS):
            weight = -weight * 0.8
        elif any(window.endswith(i) for i in _ZH_INTENSIFIERS):
            weight *= 1.5
        total += weight
        position += len(match)
        last_end = position
    return 0.7 * before + 1.3 * total if after_contrast else total


def _en_score(text: str) -> float:
    words = _EN_WORD.findall(text.lower())
    total, before, after_contrast, index, last_end = 0.0, 0.0, False, 0, 0
    while index < len(words):
        word = words[index]
        if word in _EN_CONTRASTS and index > 0:
            after_contrast, before, total = True, total, 0.0
            index += 1
            continue
        found, width = None, 1
        for size in (3, 2, 1):
            phrase = " ".join(words[index : index + size])
            if len(words) - index >= size and phrase in EN_LEXICON:
                found, width = phrase, size
                break
        if found is None:
            index += 1
            continue
        weight = EN_LEXICON[found]
        window = words[max(last_end, index - 3) : index]
        if found not in _EN_PHRASES and any(w in _EN_NEGATORS or w.endswith("n't") for w in window):
            weight = -weight * 0.8
        elif window and window[-1] in _EN_INTENSIFIERS:
            weight *= 1.5
        total += weight
        index += width
        last_end = index
    return 0.7 * before + 1.3 * total if after_contrast else total


def sentiment_score(text: str) -> float:
    """Positive above 0, negative below, 0 when the lexicon finds nothing."""
    lowered = text.lower()
    score = _en_score(lowered)
    if _CJK.search(lowered):
        score += _zh_score(lowered)
    return score


def positive_probability(text: str) -> float:
    return 1.0 / (1.0 + math.exp(-SCALE * sentiment_score(text)))


# --- labels that look like sentiment -------------------------------------------------

_POLARITY = {
    "positive": "pos",
    "pos": "pos",
    "good": "pos",
    "favorable": "pos",
    "favourable": "pos",
    "praise": "pos",
    "like": "pos",
    "正面": "pos",
    "正向": "pos",
    "积极": "pos",
    "好评": "pos",
    "褒义": "pos",
    "满意": "pos",
    "喜欢": "pos",
    "好": "pos",
    "negative": "neg",
    "neg": "neg",
    "bad": "neg",
    "unfavorable": "neg",
    "unfavourable": "neg",
    "complaint": "neg",
    "dislike": "neg",
    "负面": "neg",
    "负向": "neg",
    "消极": "neg",
    "差评": "neg",
    "贬义": "neg",
    "不满意": "neg",
    "不喜欢": "neg",
    "差": "neg",
    "neutral": "neu",
    "neu": "neu",
    "mixed": "neu",
    "中性": "neu",
    "中立": "neu",
    "中评": "neu",
    "一般": "neu",
}


def label_polarities(labels: list[str]) -> dict[str, str] | None:
    """{label: "pos" | "neg" | "neu"} when every label reads as a sentiment, else None.

    Needs at least one positive and one negative label. "1"/"0" are positive/negative,
    and with "-1" present they are positive/neutral/negative.
    """
    numeric = {"1": "pos", "+1": "pos", "0": "neg", "-1": "neg"}
    if "-1" in labels:
        numeric["0"] = "neu"
    found = {}
    for label in labels:
        key = label.strip().lower()
        polarity = _POLARITY.get(key) or numeric.get(key)
        if polarity is None:
            return None
        found[label] = polarity
    values = set(found.values())
    return found if {"pos", "neg"} <= values else None


def sentiment_distribution(text: str, labels: list[str], polarities: dict[str, str]) -> list[float]:
    """Probabilities over labels: softmax of (+z/2 pos, 0 neutral, -z/2 neg), z = SCALE * score.

    With only positive and negative labels that is exactly logistic(z) for positive.
    Several labels of the same polarity share its probability equally.
    """
    z = SCALE * sentiment_score(text)
    logits = {"pos": z / 2, "neg": -z / 2, "neu": 0.0}
    present = set(polarities.values())
    peak = max(logits[p] for p in present)
    mass = {p: math.exp(logits[p] - peak) for p in present}
    norm = sum(mass.values())
    counts = {p: sum(1 for v in polarities.values() if v == p) for p in present}
    return [mass[polarities[label]] / norm / counts[polarities[label]] for label in labels]
