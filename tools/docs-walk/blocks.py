"""Prints one bash script made of every `bash` block of the pages, in reading
order, with the local stack's default addresses replaced by the given ports.

Blocks tagged `shell` are for AWS or start the stack itself and are left out.
Each block is announced on stderr, so a failure names its page and line.
"""
import argparse
import pathlib
import re
import shlex
import sys

# Reading order: the entry point, then the local stack, then each topic.
PAGES = [
    "README.md",
    "docs/local-stack.md",
    "docs/api.md",
    "docs/answers.md",
    "docs/forms.md",
    "docs/widget.md",
    "docs/limits.md",
    "docs/fulfillment.md",
    "docs/funnel.md",
    "docs/operations.md",
    "docs/configuration.md",
    "docs/dependencies.md",
    "docs/performance.md",
    "docs/sam-local-invoke.md",
]

FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


def blocks(root, page):
    """(line number, text) of each `bash` block of the page."""
    lines = (root / page).read_text().split("\n")
    found, current, indent, start = [], None, "", 0
    for number, line in enumerate(lines, 1):
        fence = FENCE.match(line)
        if current is None:
            if fence:
                indent, start = fence.group(1), number
                current = [] if fence.group(2) == "bash" else False
        elif fence and fence.group(1) == indent and not fence.group(2):
            if current is not False:
                found.append((start, "\n".join(current)))
            current = None
        elif current is not False:
            current.append(line[len(indent):] if line.startswith(indent) else line)
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=pathlib.Path, required=True)
    parser.add_argument("--moto-port", required=True)
    parser.add_argument("--host-port", required=True)
    parser.add_argument("--bedrock-port", required=True)
    args = parser.parse_args()
    pages = {str(p.relative_to(args.root)) for p in (args.root / "docs").glob("*.md")}
    unlisted = sorted(pages - set(PAGES))
    if unlisted:
        sys.exit(f"docs-walk: add {', '.join(unlisted)} to PAGES in {__file__}")
    replace = [
        ("127.0.0.1:4566", f"127.0.0.1:{args.moto_port}"),
        ("127.0.0.1:3000", f"127.0.0.1:{args.host_port}"),
        ("localhost:3000", f"localhost:{args.host_port}"),
        ("127.0.0.1:4567", f"127.0.0.1:{args.bedrock_port}"),
        ("$PWD/.local/aws", f"$PWD/.local/stack-{args.moto_port}/aws"),
        ("tools/validate.sh --local", f"tools/validate.sh --local --moto-port {args.moto_port}"),
    ]
    out = ["set -e", "trap 'echo \"docs-walk: this command failed: $BASH_COMMAND\" >&2' ERR"]
    count = 0
    for page in PAGES:
        for line, text in blocks(args.root, page):
            for default, ours in replace:
                text = text.replace(default, ours)
            where = shlex.quote(f"{page}:{line}")
            out += [f"echo >&2; echo \"== docs-walk: {where}\" >&2", text]
            count += 1
    out.append(f"echo >&2; echo 'docs-walk: {count} blocks ran' >&2")
    print("\n".join(out))


main()
