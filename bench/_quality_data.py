"""Datasets and the simulated workforce for bench/quality_sim.py. Pure Python, no Django.

Two datasets, each a list of (external_id, text, true label) plus its label
schema and a designated "neighbour" class per class (the class a careless
annotator confuses it with):

- ``waimai``: the real reviews of ../shared/data/waimai_10k.csv (label 1
  positive, 0 negative; about 1/3 positive), in a seeded shuffle. The bench may
  read shared data; the app and its tests may not.
- ``topics10``: a 10-class news-topic task generated from the seed. Each text
  mixes 3-7 words from its class's vocabulary, 0-2 words from the neighbour
  class's vocabulary and 4-9 common filler words, shuffled and joined as
  Chinese-like sentences. Class priors are skewed (0.16 down to 0.06) so that
  Dawid-Skene's priors matter. Neighbour pairs: sports/entertainment,
  finance/property, tech/cars, education/health, travel/food. The text carries
  the label, so a model in the loop can learn it.

The workforce answers deterministically: annotator ``a`` on item ``x`` gives the
same answer in every configuration and in the offline baselines, because the
draw is seeded by (seed, a, x). An answer is right with the annotator's
accuracy; a wrong answer is the neighbour class with probability 1/2 and
otherwise a uniformly drawn class other than the truth (which may also be the
neighbour). Errors are independent between annotators and items (no item
difficulty), which flatters voting.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

# (group, count, accuracy, skill tier): 40 annotators, mean accuracy 0.779.
WORKFORCE = (
    ("good", 10, 0.92, 3),
    ("medium", 15, 0.85, 2),
    ("weak", 10, 0.72, 1),
    ("spammer", 5, 0.40, 1),
)
REVIEWER_ACCURACY = 0.95


@dataclass(frozen=True)
class Worker:
    index: int
    group: str
    accuracy: float
    tier: int


def workforce() -> list[Worker]:
    workers = []
    for group, count, accuracy, tier in WORKFORCE:
        for _ in range(count):
            workers.append(Worker(len(workers), group, accuracy, tier))
    return workers


def wrong_label(rng: random.Random, truth: str, classes: list[str], neighbour: dict) -> str:
    if rng.random() < 0.5:
        return neighbour[truth]
    return rng.choice([c for c in classes if c != truth])


def worker_answer(
    seed: int, worker: Worker, external_id: str, truth: str, classes: list[str], neighbour: dict
) -> str:
    """The label `worker` gives item `external_id`: the same in every run with `seed`."""
    rng = random.Random(f"answer:{seed}:{worker.index}:{external_id}")
    if rng.random() < worker.accuracy:
        return truth
    return wrong_label(rng, truth, classes, neighbour)


@dataclass
class Dataset:
    name: str
    labels: list[dict]  # the project's label schema labels: {"value", "title"}
    neighbour: dict[str, str]
    regular: list[tuple[str, str, str]]  # (external_id, text, truth)
    gold: list[tuple[str, str, str]]
    source: str
    truth: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.truth = {e: t for e, _, t in self.regular + self.gold}

    @property
    def classes(self) -> list[str]:
        return [label["value"] for label in self.labels]


def waimai(path: Path, seed: int, items: int, gold: int) -> Dataset:
    with path.open(encoding="utf-8", newline="") as f:
        rows = [
            (row["review"].strip(), "positive" if row["label"].strip() == "1" else "negative")
            for row in csv.DictReader(f)
            if row["review"].strip()
        ]
    if items + gold > len(rows):
        raise SystemExit(f"waimai has {len(rows)} reviews; asked for {items} items + {gold} gold")
    order = list(range(len(rows)))
    random.Random(f"waimai:{seed}").shuffle(order)
    picked = [(f"w{n:05d}", *rows[n]) for n in order[: items + gold]]
    return Dataset(
        name="waimai",
        labels=[{"value": "positive", "title": "正面"}, {"value": "negative", "title": "负面"}],
        neighbour={"positive": "negative", "negative": "positive"},
        regular=picked[:items],
        gold=picked[items:],
        source=f"{path.name} ({len(rows)} reviews, seeded shuffle)",
    )


# value: (title, prior weight, vocabulary)
TOPICS = {
    "sports": (
        "体育",
        0.16,
        "比赛 球队 冠军 进球 教练 联赛 球员 决赛 赛季 射门 奥运 金牌 篮球 足球 网球 长跑",
    ),
    "finance": (
        "财经",
        0.14,
        "股市 基金 利率 银行 投资 债券 上涨 下跌 指数 汇率 央行 财报 营收 利润 通胀 证券",
    ),
    "tech": (
        "科技",
        0.12,
        "芯片 手机 人工智能 算法 软件 互联网 数据 云计算 "
        "机器人 通信 半导体 系统 程序员 发布会 处理器 应用",
    ),
    "entertainment": (
        "娱乐",
        0.11,
        "电影 明星 综艺 票房 导演 演员 歌手 演唱会 新歌 剧集 粉丝 首映 颁奖 偶像 热播 角色",
    ),
    "education": (
        "教育",
        0.10,
        "高考 学生 老师 学校 课程 考试 大学 招生 作业 培训 毕业 留学 教材 课堂 分数 校园",
    ),
    "health": (
        "健康",
        0.09,
        "医生 医院 疫苗 症状 治疗 药物 睡眠 锻炼 饮食 血压 体检 感冒 营养 心理 患者 养生",
    ),
    "property": (
        "房产",
        0.08,
        "楼盘 房价 二手房 租金 开发商 首付 房贷 户型 物业 学区 成交 土地 限购 装修 小区 公积金",
    ),
    "cars": (
        "汽车",
        0.07,
        "新能源 电动车 续航 充电桩 车型 油耗 发动机 越野车 "
        "销量 自动驾驶 车企 试驾 底盘 变速箱 轿车 电池",
    ),
    "travel": (
        "旅游",
        0.07,
        "景区 机票 酒店 游客 签证 古镇 自驾 海岛 攻略 门票 旅行社 假期 出境 民宿 风景 导游",
    ),
    "food": (
        "美食",
        0.06,
        "火锅 餐厅 厨师 菜谱 小吃 口味 甜品 烧烤 食材 米其林 外卖 面馆 烘焙 川菜 早餐 调料",
    ),
}
TOPIC_PAIRS = (
    ("sports", "entertainment"),
    ("finance", "property"),
    ("tech", "cars"),
    ("education", "health"),
    ("travel", "food"),
)
_FILLER_WORDS = (
    "今天 记者 报道 表示 目前 已经 我们 他们 一个 这个 非常 可能 进行 发展 问题 情况 "
    "最近 相关 市场 方面 工作 时间 国内 全国 消息 网友 认为 显示 持续 期间"
)
FILLER = _FILLER_WORDS.split()


def topics10(seed: int, items: int, gold: int) -> Dataset:
    rng = random.Random(f"topics10:{seed}")
    classes = list(TOPICS)
    weights = [TOPICS[c][1] for c in classes]
    vocab = {c: TOPICS[c][2].split() for c in classes}
    neighbour = {}
    for a, b in TOPIC_PAIRS:
        neighbour[a], neighbour[b] = b, a
    rows = []
    for n in range(items + gold):
        truth = rng.choices(classes, weights)[0]
        words = (
            rng.choices(vocab[truth], k=rng.randint(3, 7))
            + rng.choices(vocab[neighbour[truth]], k=rng.randint(0, 2))
            + rng.choices(FILLER, k=rng.randint(4, 9))
        )
        rng.shuffle(words)
        text = ""
        for i, word in enumerate(words):
            text += word
            if i < len(words) - 1 and rng.random() < 0.18:
                text += "，"
        rows.append((f"t{n:05d}", text + rng.choice("。。。！"), truth))
    return Dataset(
        name="topics10",
        labels=[{"value": c, "title": TOPICS[c][0]} for c in classes],
        neighbour=neighbour,
        regular=rows[:items],
        gold=rows[items:],
        source=f"generated from seed {seed} (vocabularies in bench/_quality_data.py)",
    )
