#!/usr/bin/env python3
"""Check that the repository's documentation references resolve.

Two checks, over the files git knows (tracked, plus untracked files that .gitignore does not
exclude, so a new document counts before it is committed):

1. Every relative Markdown link [text](target) in a Markdown file resolves to an existing file or
   folder, relative to the Markdown file (a target starting with "/" is relative to the repository
   root). "#anchor" parts and link titles are stripped; URLs (http, https, mailto, ...) and
   pure in-page anchors are skipped.
2. Every document named in a source or documentation file (a word ending in ".md" whose file name
   is in capitals, the project's convention for documents: "docs/RESULTS.md", "METHOD.md") exists at
   that path relative to the file, at the repository root, or under docs/; a bare name may also
   sit in a folder named on the same line ("`Tests/Data/digits/` ... see ATTRIBUTION.md"). URLs are
   removed before searching. Lower-case names are left alone: they are generated outputs
   ("OUT/results.md") or code ("primitive.md" is a oneDNN memory descriptor).

Usage: python3 tools/check_links.py [--root DIR] [--tracked-only] [--verbose]
Prints what is missing ("file:line: kind 'target'") and a one-line summary
("links: N checked, M missing"); exits 1 if anything is missing, 0 otherwise.
Standard library only.
"""

import argparse
import os
import re
import subprocess
import sys

# Files searched for document names (check 2); Markdown files are also searched for links.
TEXT_SUFFIXES = (".md", ".swift", ".py", ".sh", ".mk", ".yaml", ".yml", ".proto", ".txt", ".service", ".conf")
TEXT_NAMES = ("Makefile", "Dockerfile")

MD_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s)>\]\"'`]+|\bmailto:[^\s)>\]\"'`]+")
DOC_NAME = re.compile(r"(?<![A-Za-z0-9_./-])((?:[A-Za-z0-9_.-]+/)*[A-Z][A-Z0-9_-]*\.md)(?![A-Za-z0-9_])")
FOLDER = re.compile(r"(?<![A-Za-z0-9_./-])((?:[A-Za-z0-9_.-]+/)+)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
FENCE = re.compile(r"^\s*(```|~~~)")


def repo_files(root, tracked_only):
    cmd = ["git", "-C", root, "ls-files", "-z"]
    if not tracked_only:
        cmd += ["--cached", "--others", "--exclude-standard"]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout.decode("utf-8", "surrogateescape")
    return sorted(set(p for p in out.split("\0") if p))


def is_text_source(path):
    base = os.path.basename(path)
    return base in TEXT_NAMES or base.startswith("Dockerfile") or path.endswith(TEXT_SUFFIXES)


def read_lines(root, path):
    try:
        with open(os.path.join(root, path), "r", encoding="utf-8") as f:
            return f.read().splitlines()
    except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
        return None


def markdown_links(lines):
    """(line number, target) of every link and image outside fenced code blocks."""
    in_fence = False
    for n, line in enumerate(lines, 1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        # Inline code spans are not links.
        text = re.sub(r"`[^`]*`", "", line)
        for rx in (MD_LINK, IMAGE_LINK):
            for m in rx.finditer(text):
                yield n, m.group(1)


def link_exists(root, md_path, target):
    target = target.split("#", 1)[0].split("?", 1)[0]
    if not target:
        return True  # an in-page anchor
    if target.startswith("/"):
        full = os.path.join(root, target.lstrip("/"))
    else:
        full = os.path.join(root, os.path.dirname(md_path), target)
    return os.path.exists(os.path.normpath(full))


def name_exists(root, src_path, name, line):
    candidates = [
        os.path.join(root, os.path.dirname(src_path), name),
        os.path.join(root, name),
        os.path.join(root, "docs", name),
    ]
    if "/" not in name:
        for folder in FOLDER.findall(line):
            candidates += [os.path.join(root, folder, name), os.path.join(root, os.path.dirname(src_path), folder, name)]
    return any(os.path.exists(os.path.normpath(c)) for c in candidates)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.dirname(here), help="repository root (default: this file's parent folder)")
    ap.add_argument("--tracked-only", action="store_true", help="only files already tracked by git")
    ap.add_argument("--verbose", action="store_true", help="also list every reference that resolved")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    self_path = os.path.relpath(os.path.abspath(__file__), root)

    checked = 0
    missing = []
    for path in repo_files(root, args.tracked_only):
        if path == self_path or not is_text_source(path):
            continue
        lines = read_lines(root, path)
        if lines is None:
            continue
        if path.endswith(".md"):
            for n, target in markdown_links(lines):
                if SCHEME.match(target) or target.startswith("#"):
                    continue
                checked += 1
                ok = link_exists(root, path, target)
                if not ok:
                    missing.append("%s:%d: link '%s'" % (path, n, target))
                elif args.verbose:
                    print("ok %s:%d: link '%s'" % (path, n, target))
        for n, line in enumerate(lines, 1):
            text = URL.sub(" ", line)
            for m in DOC_NAME.finditer(text):
                name = m.group(1)
                checked += 1
                if not name_exists(root, path, name, text):
                    missing.append("%s:%d: document '%s'" % (path, n, name))
                elif args.verbose:
                    print("ok %s:%d: document '%s'" % (path, n, name))

    for m in missing:
        print(m)
    print("links: %d checked, %d missing" % (checked, len(missing)))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
