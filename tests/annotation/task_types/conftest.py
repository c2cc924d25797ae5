import pytest

from annotation.schemas import label_schema_validate
from annotation.task_types import HUMAN, MODEL, SchemaError, answer_validate


@pytest.fixture(params=[HUMAN, MODEL])
def source(request):
    """Human submits and model replies go through the same checks."""
    return request.param


def schema_for(task_type, raw):
    return label_schema_validate(task_type, raw)


def refused(task_type, label_schema, answer, *, item_data=None, source=HUMAN) -> SchemaError:
    with pytest.raises(SchemaError) as excinfo:
        answer_validate(task_type, label_schema, answer, item_data=item_data, source=source)
    return excinfo.value
