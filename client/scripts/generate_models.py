"""Write the client's response types from the server's OpenAPI schema.

    python client/scripts/generate_models.py          # rewrite _models.py
    python client/scripts/generate_models.py --check  # exit 1 if it is out of date

The schema comes from drf-spectacular in process (the server's own code), so the
types are the server's serializers; tests/client/test_schema_contract.py fails
while _models.py differs from what this script would write.
"""

import keyword
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET = REPO / "client" / "src" / "tokenworks_client" / "_models.py"

# The responses the client returns; components they refer to come along.
ROOTS = [
    "Me",
    "Project",
    "ProjectQuality",
    "ProjectStatement",
    "Workforce",
    "ImportJob",
    "Item",
    "ItemResult",
    "ExportJob",
    "DatasetVersion",
    "Backend",
    "PromptTemplate",
    "PrelabelRun",
    "Prediction",
    "FineTuneRun",
    "WebhookEndpoint",
    "WebhookEndpointCreated",
    "WebhookDelivery",
    "ApiToken",
    "ApiTokenCreated",
    "WorkspaceProject",
    "Lease",
    "Annotation",
    "ReviewLease",
    "Review",
    "ReportRegion",
]

HEADER = '''# Generated from the server's OpenAPI schema by client/scripts/generate_models.py:
# do not edit; run the script after changing a serializer.
"""What the API answers, as typed dictionaries (the JSON the client returns)."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict
'''

SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}


def _ref_name(node):
    return node["$ref"].rsplit("/", 1)[-1]


def _type(node, components, wanted):
    if "$ref" in node:
        name = _ref_name(node)
        target = components[name]
        if "enum" in target:
            return SCALARS.get(target.get("type", "string"), "str")
        if target.get("properties"):
            wanted.append(name)
            return name
        return "dict[str, Any]"
    if len(node.get("allOf", [])) == 1:
        text = _type(node["allOf"][0], components, wanted)
    elif node.get("type") == "array":
        text = f"list[{_type(node.get('items', {}), components, wanted)}]"
    elif node.get("type") == "object" or "properties" in node:
        text = "dict[str, Any]"
    elif node.get("type") in SCALARS and "oneOf" not in node:
        text = SCALARS[node["type"]]
    else:
        text = "Any"
    if node.get("nullable") and text != "Any":
        text += " | None"
    return text


def render(schema) -> str:
    components = schema["components"]["schemas"]
    wanted, done, classes = list(ROOTS), set(), []
    while wanted:
        name = wanted.pop(0)
        if name in done:
            continue
        done.add(name)
        component = components[name]
        required = set(component.get("required", []))
        lines = [f"class {name}(TypedDict):"]
        description = (component.get("description") or "").strip().splitlines()
        if description:
            lines.append(f'    """{description[0].replace(chr(34) * 3, "")}"""')
            lines.append("")
        for field, node in component["properties"].items():
            assert field.isidentifier() and not keyword.iskeyword(field), (name, field)
            text = _type(node, components, wanted)
            if field not in required:
                text = f"NotRequired[{text}]"
            lines.append(f"    {field}: {text}")
        classes.append((name, "\n".join(lines)))
    body = "\n\n\n".join(text for _name, text in sorted(classes))
    names = ", ".join(f'"{name}"' for name, _text in sorted(classes) if not name.startswith("_"))
    return f"{HEADER}\n__all__ = [{names}]\n\n\n{body}\n"


def formatted(text: str) -> str:
    import subprocess

    ruff = Path(sys.executable).with_name("ruff")
    return subprocess.run(  # noqa: S603 - ruff from this environment, fixed arguments
        [str(ruff) if ruff.exists() else "ruff", "format", "--stdin-filename", str(TARGET), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def server_schema():
    sys.path[:0] = [str(REPO), str(REPO / "platform")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def main() -> int:
    expected = formatted(render(server_schema()))
    if "--check" in sys.argv[1:]:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != expected:
            print(f"{TARGET} is out of date: run python client/scripts/generate_models.py")
            return 1
        return 0
    TARGET.write_text(expected, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
