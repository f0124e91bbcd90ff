#!/usr/bin/env python3
"""Checks the module rules of docs/architecture.md on the sources.

1. No two files of the same crate import each other, directly or in a
   loop. A file imports another when it names an item of that file's module
   (`use crate::a::b`, `crate::a::b::f(..)`, `use super::x`, `pub use
   child::Item`); naming an item of one's own ancestor module (a child
   using its parent's items) is not an import, since the parent declares
   the child.
2. In barman-core, operations do not import other operations: what two
   operations share lives in a module below them (SHARED), which imports
   no operation. The scheduler (`cron`) composes operations and nothing
   imports it.
3. barman-catalog and barman-config do not depend on tokio,
   tokio-postgres or rustls (checked by reading their Cargo.toml: they
   may only depend on the crates in LEAF_OK).

Exits 1, naming every offence, when a rule is broken.
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# barman-core's operations (each a top-level module with its submodules).
OPERATIONS = {
    "backup", "recover", "delete", "keep", "check", "listing",
    "receive_wal", "replication_status", "sync",
}
# barman-core's modules below the operations.
SHARED = {
    "archive", "shared", "removal", "server", "hooks", "retention", "shell", "clock", "error",
    "event",
}
# Above the operations: the scheduler composes them, as Barman's cron does;
# nothing imports it.
SCHEDULER = {"cron"}

# What the crates without an async runtime may depend on.
LEAF_OK = {
    "barman-catalog": {"barman-fs", "barman-wal", "barman-retention", "thiserror", "serde",
                       "serde_json", "tracing", "jiff"},
    "barman-config": {"barman-catalog", "barman-fs", "barman-retention", "barman-wal", "thiserror",
                      "serde_json", "jiff"},
}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(re.sub(r"//.*", "", line) for line in text.split("\n"))


def strip_tests(text):
    """Drops `#[cfg(test)]` items (test modules may use anything)."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*(;|\{)", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        if m.group(3) == ";":
            i = m.end()
            continue
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def modules(src):
    """Module path (tuple) -> file, for every .rs file of a crate's src/."""
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                mod = ()
            elif rel[-1] == "mod":
                mod = tuple(rel[:-1])
            else:
                mod = tuple(rel)
            if rel[-1] == "tests" or (rel and rel[0] == "bin"):
                continue
            mods[mod] = path
    return mods


def expand_use(prefix, body):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (paths as lists)."""
    body = body.strip()
    m = re.match(r"^([\w:]*?)(::)?\{(.*)\}$", body, re.S)
    if not m:
        return [prefix + [p for p in re.split(r"::", body.split(" as ")[0].strip()) if p]]
    head = [p for p in m.group(1).split("::") if p]
    inner, depth, cur, parts = m.group(3), 0, "", []
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    parts.append(cur)
    result = []
    for p in parts:
        if p.strip() and p.strip() != "self":
            result += expand_use(prefix + head, p)
        elif p.strip() == "self":
            result.append(prefix + head)
    return result


def references(mod, text, mods):
    """Module paths of `mods` that the module `mod` names."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        body = m.group(1).strip()
        first = re.split(r"::", body, 1)[0]
        if first == "crate":
            paths += expand_use([], body[len("crate::"):])
        elif first in ("super", "self"):
            base = list(mod)
            rest = body
            while rest.startswith("super::"):
                base = base[:-1]
                rest = rest[len("super::"):]
            if rest.startswith("self::"):
                rest = rest[len("self::"):]
            paths += expand_use(base, rest)
        elif (*mod, first) in mods:
            paths += expand_use(list(mod), body)
    for m in re.finditer(r"\bcrate((?:::\w+)+)", text):
        paths.append(m.group(1).split("::")[1:])
    for m in re.finditer(r"(?<![\w:])super((?:::\w+)+)", text):
        paths.append(list(mod[:-1]) + m.group(1).split("::")[1:])
    targets = set()
    for p in paths:
        best = ()
        for n in range(len(p), 0, -1):
            if tuple(p[:n]) in mods:
                best = tuple(p[:n])
                break
        if best and best != mod and mod[: len(best)] != best:
            targets.add(best)
    return targets


def find_cycles(graph):
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(scc)

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return sccs


def main():
    problems = []
    crates = os.path.join(ROOT, "crates")
    for crate in sorted(os.listdir(crates)):
        src = os.path.join(crates, crate, "src")
        if not os.path.isdir(src):
            continue
        mods = modules(src)
        graph = {}
        for mod, path in mods.items():
            text = strip_tests(strip_comments(open(path, encoding="utf-8").read()))
            graph[mod] = references(mod, text, mods)
        for scc in find_cycles(graph):
            names = sorted("::".join(m) or "lib" for m in scc)
            problems.append(f"{crate}: modules import each other in a loop: {', '.join(names)}")
        if crate == "barman-core":
            for mod, targets in graph.items():
                if not mod:
                    continue
                if mod[0] not in OPERATIONS | SHARED | SCHEDULER:
                    problems.append(
                        f"barman-core: module `{mod[0]}` is not classified (operation, shared, scheduler)"
                    )
                for t in targets:
                    if t[0] in SCHEDULER and mod[0] not in SCHEDULER:
                        problems.append(f"barman-core: `{'::'.join(mod)}` imports the scheduler `{t[0]}`")
                    if mod[0] in OPERATIONS and t[0] in OPERATIONS and t[0] != mod[0]:
                        problems.append(
                            f"barman-core: operation `{'::'.join(mod)}` imports operation `{'::'.join(t)}`"
                        )
                    if mod[0] in SHARED and t[0] in OPERATIONS:
                        problems.append(
                            f"barman-core: shared module `{'::'.join(mod)}` imports operation `{'::'.join(t)}`"
                        )
    for crate, allowed in LEAF_OK.items():
        toml = open(os.path.join(crates, crate, "Cargo.toml"), encoding="utf-8").read()
        deps = toml.split("[dependencies]", 1)[1].split("\n[", 1)[0]
        for line in deps.splitlines():
            m = re.match(r"^([\w-]+)\s*[.=]", line.strip())
            if m and m.group(1) not in allowed:
                problems.append(f"{crate}: depends on `{m.group(1)}` (allowed: {sorted(allowed)})")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} architecture problem(s): see docs/architecture.md")
        return 1
    print("architecture: no import loops, operations independent, catalog and config without a runtime")
    return 0


if __name__ == "__main__":
    sys.exit(main())
