#!/usr/bin/python3
"""The gateway's file-level call graph, read from its object files, checked against the layers.

Usage: scripts/layers.py BUILD_DIR [--print]

Each gateway layer is a static library whose objects are under
BUILD_DIR/gateway/CMakeFiles/psagw_<layer>.dir/. A file calls another when one of its undefined
symbols is defined there (nm). Two rules are checked (docs/architecture.md):

  1. a file calls only files of its own layer or of the layers below it;
  2. the file graph has no cycle but the CONNECT/AUTH pair (handle_connect <-> handle_auth).

Exit status 0 when both hold, 1 with each violation printed otherwise. --print also prints the
graph, one file per line with the files it calls.
"""
import glob
import os
import subprocess
import sys

# bottom to top; a layer may call itself and those before it
LAYERS = ["base", "store", "net", "broker", "attest", "cloud", "proto", "http", "daemon", "cli"]
ALLOWED_CYCLES = [{"proto/handle_connect", "proto/handle_auth"}]


def symbols(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined, functions = set(), set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDBRCV":
            defined.add(parts[2])
            if parts[1] == "T":
                functions.add(parts[2])
        elif len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
    return defined, undefined, functions


def strongly_connected(graph):
    """Tarjan's algorithm, iterative; returns the components of more than one file."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(comp)
    return comps


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    build = sys.argv[1]
    files = {}  # "layer/file" -> (layer rank, defined, undefined)
    for rank, layer in enumerate(LAYERS):
        pattern = os.path.join(build, "gateway", "CMakeFiles", "psagw_%s.dir" % layer, "**", "*.o")
        for obj in sorted(glob.glob(pattern, recursive=True)):
            name = "%s/%s" % (layer, os.path.basename(obj)[: -len(".c.o")])
            files[name] = (rank,) + symbols(obj)
    if not files:
        print("layers: no gateway objects under %s (build first)" % build, file=sys.stderr)
        return 2
    owner = {}
    for name, (_, defined, _, _) in files.items():
        for sym in defined:
            owner[sym] = name
    graph = {name: set() for name in files}
    why = {}
    for name, (_, _, undefined, _) in files.items():
        for sym in undefined:
            callee = owner.get(sym)
            if callee and callee != name:
                graph[name].add(callee)
                why.setdefault((name, callee), sym)
    failures = []
    for caller in sorted(graph):
        for callee in sorted(graph[caller]):
            if files[callee][0] > files[caller][0]:
                failures.append("upward call: %s -> %s (%s)" % (caller, callee, why[(caller, callee)]))
    for name, (_, _, _, functions) in sorted(files.items()):
        layer, base = name.split("/")
        for fn in sorted(functions):
            prefix = fn.split("_")[0]
            if prefix != layer and prefix not in base.split("_"):
                failures.append("name: %s defines %s (prefix '%s' names neither the file nor "
                                "the layer)" % (name, fn, prefix))
    for comp in strongly_connected(graph):
        if comp not in ALLOWED_CYCLES:
            failures.append("cycle: %s" % " ".join(sorted(comp)))
    if "--print" in sys.argv:
        for caller in sorted(graph, key=lambda n: (files[n][0], n)):
            print("%-26s -> %s" % (caller, " ".join(sorted(graph[caller])) or "-"))
    for f in failures:
        print("layers: " + f, file=sys.stderr)
    if not failures:
        print("layers: %d files in %d layers, no upward call, no cycle but CONNECT/AUTH, "
              "every function named after its file or layer" % (len(files), len(LAYERS)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
