#!/usr/bin/env bash
# Regenerates the diff fixtures in this directory with real git and GNU diff.
# Usage: tests/data/diffs/make_fixtures.sh   (writes next to itself; needs git, diff, python3)
# Hashes, dates and the git version in format_patch.patch change on every run; the tests only
# rely on the structure, so regenerating is safe.
set -euo pipefail
OUT="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
git init -q -b main repo && cd repo
git config user.email t@example.com && git config user.name Tester && git config core.autocrlf false
mkdir -p src
python3 - <<'EOF'
open("src/multi.py", "w").writelines(f"line {i}\n" for i in range(1, 41))
open("src/old_name.py", "w").write("".join(f"def f{i}():\n    return {i}\n" for i in range(10)))
open("src/renamed_edit.py", "w").write("".join(f"value_{i} = {i}\n" for i in range(20)))
open("src/copy_src.py", "w").write("".join(f"const_{i} = {i}\n" for i in range(20)))
open("doomed.txt", "w").write("alpha\nbeta\ngamma\n")
open("run.sh", "w").write("#!/bin/sh\necho hi\n")
open("tool.sh", "w").write("#!/bin/sh\necho one\necho two\n")
open("crlf.txt", "wb").write(b"first\r\nsecond\r\nthird\r\n")
open("noeol.txt", "w").write("a\nb\nc")
open("noeol_new.txt", "w").write("x\ny\nz\n")
open("latin1.txt", "wb").write("caf\xe9\nna\xefve\nend\n".encode("latin-1"))
open("my file.txt", "w").write("spaced\nout\n")
open("café.txt", "w").write("crème\nbrûlée\n")
open("image.bin", "wb").write(bytes(range(256)) * 4)
EOF
git add -A && git commit -qm base
python3 - <<'EOF'
lines = [f"line {i}\n" for i in range(1, 41)]
lines[2] = "line 3 changed\n"
lines.insert(5, "inserted after 5\n")
del lines[30]
lines[35] = "line 37 changed\n"
open("src/multi.py", "w").writelines(lines)
src = "".join(f"value_{i} = {i}\n" for i in range(20))
open("src/renamed_edit.py", "w").write(src.replace("value_10 = 10", "value_10 = 100"))
src = "".join(f"const_{i} = {i}\n" for i in range(20))
open("src/copy_dst.py", "w").write(src.replace("const_19 = 19", "const_19 = 190"))
open("src/copy_src.py", "a").write("const_20 = 20\n")
open("tool.sh", "w").write("#!/bin/sh\necho one\necho 2\n")
open("crlf.txt", "wb").write(b"first\r\nSECOND\r\nthird\r\n")
open("noeol.txt", "w").write("a\nB\nc")
open("noeol_new.txt", "w").write("x\ny\nz")
open("latin1.txt", "wb").write("caf\xe9\nna\xefve!\nend\n".encode("latin-1"))
open("my file.txt", "w").write("spaced\nOUT\n")
open("café.txt", "w").write("crème\nbrûlée!\n")
open("src/new_module.py", "w").write('"""New."""\n\nVALUE = 1\n')
open("empty_new.txt", "w").write("")
b = bytearray(bytes(range(256)) * 4)
b[10], b[500] = 0, 1
open("image.bin", "wb").write(bytes(b))
open("new.bin", "wb").write(bytes(range(200)))
EOF
git mv src/old_name.py src/new_name.py
git mv src/renamed_edit.py src/renamed_after.py
git rm -q doomed.txt
chmod +x run.sh tool.sh
git add -A

d() { git diff --cached "$@"; }
d -- src/multi.py >"$OUT/multi_hunk.patch"
d -- src/new_module.py empty_new.txt >"$OUT/new_file.patch"
d -- doomed.txt >"$OUT/deleted.patch"
d -M -- src/old_name.py src/new_name.py src/renamed_edit.py src/renamed_after.py >"$OUT/rename.patch"
d -C -- src/copy_src.py src/copy_dst.py >"$OUT/copy.patch"
d -- image.bin new.bin >"$OUT/binary.patch"
d --binary -- image.bin new.bin >"$OUT/binary_git.patch"
d -- run.sh tool.sh >"$OUT/mode.patch"
d -- crlf.txt >"$OUT/crlf_content.patch"
d -- noeol.txt noeol_new.txt >"$OUT/no_newline.patch"
d -- latin1.txt src/new_module.py >"$OUT/latin1.patch"
d -- "my file.txt" >"$OUT/spaces.patch"
d -- "café.txt" >"$OUT/quoted_path.patch"
d --no-prefix -- src/multi.py doomed.txt >"$OUT/no_prefix.patch"
# The same multi-hunk diff as saved by a Windows editor: every line ends in CRLF.
sed 's/$/\r/' "$OUT/multi_hunk.patch" >"$OUT/crlf_diff.patch"
# Cut inside the second hunk: 5 of its 13 old lines survive.
head -n 22 "$OUT/multi_hunk.patch" >"$OUT/truncated.patch"

git commit -qm "Rework multi and friends

Longer body explaining the change.
---not a separator, just text"
git format-patch -1 --stdout -- src/multi.py src/new_module.py >"$OUT/format_patch.patch"

git mv "my file.txt" "your file.txt"
git mv "café.txt" "thé.txt"
git rm -q new.bin
d -M >"$OUT/rename_special.patch"

mkdir -p "$WORK/plain/old" "$WORK/plain/new" && cd "$WORK/plain"
printf 'one\ntwo\nthree\nfour\n' >old/notes.txt
printf 'one\n2\nthree\nfour\nfive\n' >new/notes.txt
printf 'keep\n' >old/gone.txt
printf 'fresh\n' >new/added.txt
diff -ruN old new >"$OUT/plain_diff_u.patch" || true
