"""Write the synchronous client from the asynchronous one (as httpcore does).

    python client/scripts/unasync.py          # rewrite _sync_client.py
    python client/scripts/unasync.py --check  # exit 1 if it is out of date

Both clients are one source, so they cannot disagree: a test runs --check.
"""

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tokenworks_client"
SOURCE = PACKAGE / "_async_client.py"
TARGET = PACKAGE / "_sync_client.py"

HEADER = (
    "# Generated from _async_client.py by client/scripts/unasync.py: edit that file and\n"
    "# run the script; tests/client/test_unasync.py fails while this one is out of date.\n"
)

SUBSTITUTIONS = [
    (r"\bimport asyncio\b", "import time"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\basync def\b", "def"),
    (r"\basync for\b", "for"),
    (r"\basync with\b", "with"),
    (r"\bawait ", ""),
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"\baclose\b", "close"),
    (r"\baread\b", "read"),
    (r"\baiter_bytes\b", "iter_bytes"),
    (r"\baiter_lines\b", "iter_lines"),
    # AsyncClient -> Client, AsyncIterator -> Iterator, _AsyncCore -> _Core, ...
    (r"(?<![A-Za-z0-9])Async(?=[A-Z])", ""),
]


def unasync(text: str) -> str:
    for pattern, replacement in SUBSTITUTIONS:
        text = re.sub(pattern, replacement, text)
    return HEADER + text


def formatted(text: str) -> str:
    """Through ruff, as `make lint` formats and sorts everything else."""
    ruff = Path(sys.executable).with_name("ruff")
    command = [str(ruff) if ruff.exists() else "ruff"]
    fixed = subprocess.run(  # noqa: S603 - ruff from this environment, fixed arguments
        [*command, "check", "--select", "I,F401", "--fix", "--stdin-filename", str(TARGET), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return subprocess.run(  # noqa: S603 - as above
        [*command, "format", "--stdin-filename", str(TARGET), "-"],
        input=fixed or text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def main() -> int:
    expected = formatted(unasync(SOURCE.read_text(encoding="utf-8")))
    if "--check" in sys.argv[1:]:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != expected:
            print(f"{TARGET} is out of date: run python client/scripts/unasync.py")
            return 1
        return 0
    TARGET.write_text(expected, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
