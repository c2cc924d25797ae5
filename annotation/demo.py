"""Demo projects for `make run`: one per common task type, idempotent by name."""

from django.db import transaction

from tenants.models import Organization, User

from .models import Item, Project
from .schemas import item_text, label_schema_validate
from .token_estimate import estimate_tokens

# Written for the demo (not from any data set): short delivery reviews.
REVIEWS = [
    ("送餐很快，饭菜还是热的，好评", "positive"),
    ("等了一个半小时，汤都洒了", "negative"),
    ("味道不错，分量也足，下次还点", "positive"),
    ("米饭是生的，客服也不理人", "negative"),
    ("骑手很有礼貌，下雨天还送上楼", "positive"),
    ("菜太咸了，根本吃不下", "negative"),
    ("包装很用心，一点都没漏", "positive"),
    ("少送了一份小菜，联系商家没回复", "negative"),
    ("价格实惠，味道和店里一样", "positive"),
    ("点的微辣送来特别辣，备注没看", "negative"),
    ("水果很新鲜，切得也整齐", "positive"),
    ("肉是凉的，像是隔夜的", "negative"),
    ("老顾客了，一直很稳定", "positive"),
    ("送错地址了，打电话才找到", "negative"),
    ("面条劲道，汤头浓郁", "positive"),
    ("油太多了，吃完不舒服", "negative"),
    ("速度快，味道好，没毛病", "positive"),
    ("奶茶少冰做成了多冰", "negative"),
    ("饺子皮薄馅大，孩子很喜欢", "positive"),
    ("筷子和纸巾都没给", "negative"),
    ("性价比很高，推荐", "positive"),
    ("排骨全是骨头没什么肉", "negative"),
    ("比预计时间早到了十分钟", "positive"),
    ("炸鸡不脆了，软塌塌的", "negative"),
    ("沙拉很清爽，酱汁分开装很贴心", "positive"),
    ("超时了还不给退款", "negative"),
    ("分量足，两个人吃都够", "positive"),
    ("粥里有头发，恶心", "negative"),
    ("口味正宗，很下饭", "positive"),
    ("订单显示送达其实没送到", "negative"),
]

SUPPORT_PAIRS = [
    (
        "我的订单一直没送到怎么办？",
        "很抱歉给您带来不便。我已为您查询，骑手预计十分钟内送达；如超过时间未送到，可在订单页申请全额退款。",
        "请耐心等待。",
    ),
    (
        "怎么开发票？",
        "发票需要找商家。",
        "您可以在订单详情页点击“申请发票”，填写抬头和税号后，电子发票会在24小时内发送到您的邮箱。",
    ),
    (
        "优惠券为什么用不了？",
        "优惠券可能未达到使用门槛或已过期。您可以在“我的-优惠券”查看使用条件，如有疑问我帮您进一步核实。",
        "系统问题，过会再试。",
    ),
]

ENTITY_TEXTS = [
    "王小丽在贵阳市观山湖区点了一份酸汤鱼。",
    "李强从郑州东站出发，下午到达成都。",
    "陈静在杭州的阿里巴巴园区收到了外卖。",
]

PROJECTS = [
    {
        "name": "外卖评论情感 · Delivery review sentiment",
        "task_type": "classification",
        "label_schema": {
            "labels": [
                {"value": "positive", "title": "正面 Positive"},
                {"value": "negative", "title": "负面 Negative"},
            ]
        },
        "instructions": "判断这条外卖评论的情感。\nLabel the sentiment of the delivery review.",
        "overlap": 2,
        "review_rate": "0.1",
        "gold_ratio": "0.1",
        "agreement_threshold": "0.6",
        "price_per_1k_tokens": "0.80",
        "required_tier": 1,
    },
    {
        "name": "客服回答偏好 · Support answer preference",
        "task_type": "preference",
        "label_schema": {"allow_tie": True, "rationale": "optional"},
        "instructions": "选择更有帮助、更礼貌的回答。\nPick the more helpful, polite answer.",
        "overlap": 1,
        "review_rate": "0.2",
        "gold_ratio": "0",
        "agreement_threshold": "0.6",
        "price_per_1k_tokens": "6.00",
        "required_tier": 1,
    },
    {
        "name": "实体标注 · Named entities",
        "task_type": "spans",
        "label_schema": {
            "labels": [
                {"value": "PER", "title": "人名 Person"},
                {"value": "LOC", "title": "地点 Location"},
                {"value": "ORG", "title": "机构 Organization"},
            ]
        },
        "instructions": "选中人名、地点和机构，按数字键标注。\nSelect people, places and "
        "organizations, then press the label's number key.",
        "overlap": 1,
        "review_rate": "0.1",
        "gold_ratio": "0",
        "agreement_threshold": "0.6",
        "price_per_1k_tokens": "2.50",
        "required_tier": 1,
    },
]


# Generated from these parts, so every demo project has enough items for two
# annotators to work a while (the hand-written ones alone were three), with no
# data set to download: the same items on every machine, in a fixed order.
DISHES = [
    "酸汤鱼",
    "牛肉粉",
    "黄焖鸡",
    "麻辣烫",
    "烤鸭饭",
    "肠旺面",
    "饺子",
    "奶茶",
    "炒河粉",
    "披萨",
]
PRAISE = ["味道很正宗，下次还点", "送得很快，还是热的", "分量很足，性价比高", "包装干净，没有洒"]
COMPLAINTS = ["等了一个多小时才到", "送来已经凉了", "分量太少，不值这个价", "汤洒了一袋子"]
PEOPLE = ["王小丽", "李强", "陈静", "赵敏", "刘洋", "周丹", "张伟", "孙悦"]
PLACES = ["贵阳市", "遵义", "郑州", "成都", "杭州", "深圳", "观山湖区", "花溪"]
ORGANIZATIONS = ["贵州大学", "千帆科技", "贵阳数据标注中心", "人民医院", "郑州东站", "阿里巴巴"]
QUESTIONS = [
    (
        "我点的{dish}还没送到，怎么办？",
        "已为您查询，骑手预计十五分钟内送达；超时可在订单页申请赔付。",
        "等着吧。",
    ),
    (
        "{dish}里吃出了异物，能退款吗？",
        "非常抱歉！请在订单页上传照片申请退款，我们会在一小时内处理并补偿优惠券。",
        "找商家。",
    ),
    (
        "{dish}送错了，能重新送吗？",
        "抱歉送错了。我已为您联系商家重新制作，约三十分钟送达，原餐无需退回。",
        "不行。",
    ),
    (
        "怎么给{dish}的商家写评价？",
        "订单完成后，在“我的订单”中点击“评价”即可，可以上传照片。",
        "自己找。",
    ),
    ("{dish}可以备注少放辣吗？", "可以。下单时在“备注”里写“少辣”，商家会按备注制作。", "不知道。"),
    (
        "{dish}的发票怎么开？",
        "在订单详情页点击“申请发票”，填写抬头和税号，电子发票24小时内发到邮箱。",
        "问商家。",
    ),
]


def _review_items() -> list[tuple[str, dict, dict | None]]:
    # Every fifth review is a gold item with its known label.
    written = [(f"review-{n}", text, label) for n, (text, label) in enumerate(REVIEWS)]
    made = [
        (f"review-g{n}", f"{dish}{phrase}", label)
        for n, (dish, phrase, label) in enumerate(
            (dish, phrase, label)
            for dish in DISHES
            for phrases, label in ((PRAISE, "positive"), (COMPLAINTS, "negative"))
            for phrase in phrases
        )
    ]
    return [
        (external_id, {"text": text}, {"label": label} if n % 5 == 0 else None)
        for n, (external_id, text, label) in enumerate([*written, *made])
    ]


def _pair_items() -> list[tuple[str, dict, dict | None]]:
    written = [
        (f"pair-{n}", {"prompt": p, "response_a": a, "response_b": b})
        for n, (p, a, b) in enumerate(SUPPORT_PAIRS)
    ]
    made = []
    for n, (dish, (question, helpful, curt)) in enumerate(
        (dish, q) for dish in DISHES for q in QUESTIONS
    ):
        # The helpful answer on either side, so position tells nothing.
        a, b = (helpful, curt) if n % 2 == 0 else (curt, helpful)
        made.append(
            (f"pair-g{n}", {"prompt": question.format(dish=dish), "response_a": a, "response_b": b})
        )
    return [(external_id, data, None) for external_id, data in [*written, *made]]


def _entity_items() -> list[tuple[str, dict, dict | None]]:
    written = [(f"entity-{n}", text) for n, text in enumerate(ENTITY_TEXTS)]
    made = [
        (
            f"entity-g{n}",
            f"{PEOPLE[n % len(PEOPLE)]}在{PLACES[(n * 3) % len(PLACES)]}的"
            f"{ORGANIZATIONS[(n * 5) % len(ORGANIZATIONS)]}点了一份{DISHES[n % len(DISHES)]}。",
        )
        for n in range(60)
    ]
    return [(external_id, {"text": text}, None) for external_id, text in [*written, *made]]


# The demo's items for each of its projects' task types.
DEMO_ITEMS = {"classification": _review_items, "preference": _pair_items, "spans": _entity_items}


def _items_for(project: Project) -> list[tuple[str, dict, dict | None]]:
    return DEMO_ITEMS[project.task_type]()


@transaction.atomic
def demo_seed() -> int:
    """Create the demo projects and items that are missing; returns rows created."""
    client = Organization.objects.filter(slug="qianfan-ai").first()
    centre = Organization.objects.filter(slug="guiyang-data-centre").first()
    owner = User.objects.filter(username="client").first()
    if not (client and centre and owner):
        return 0
    created = 0
    for spec in PROJECTS:
        fields = {
            **spec,
            "label_schema": label_schema_validate(spec["task_type"], spec["label_schema"]),
        }
        project, made = Project.objects.get_or_create(
            organization=client,
            name=spec["name"],
            defaults={
                **fields,
                "workforce": centre,
                "created_by": owner,
                "status": Project.Status.ACTIVE,
            },
        )
        created += made
        for external_id, data, gold in _items_for(project):
            _, made = Item.objects.get_or_create(
                project=project,
                external_id=external_id,
                defaults={
                    "data": data,
                    "gold_answer": gold,
                    "is_gold": gold is not None,
                    "target_annotations": None if gold else project.initial_target,
                    "token_count": estimate_tokens(item_text(project.task_type, data)),
                },
            )
            created += made
    return created
